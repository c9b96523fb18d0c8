"""The presets table: one row per published weight set (timm's `default_cfgs`, one `Preset` each).

A row states everything about one weight: the architecture it fits (timm's name, a zoo spelling),
its tag, where the file is (Hub repository, file name, SHA-256 where recorded, the original
publisher's URL), its licence, its published ImageNet accuracy, its class count and how its eval
images are made (input size, crop fraction, interpolation, mean/std). The zoo, the tag resolver
(`keras_regnet.pretrained.tags`), the loader (`keras_regnet.pretrained.cache` / `load`), evaluation,
export and the keras-hub converter read it, so adding a weight is adding one row to `_ROWS`.

The 24 pycls rows: the pycls model-zoo checkpoints (Radosavovic et al. 2020, MIT licence) as re-hosted
by timm on the Hugging Face Hub in safetensors format (`timm/<arch>.pycls_in1k`, `model.safetensors`,
no unpickling needed). timm renamed the keys to its own scheme and reversed the stem to RGB input
(stated in timm's regnet.py module docstring), so these files are converted without a BGR flip.
timm's `pretrained_cfg` for them says `interpolation="bicubic"` (timm/models/regnet.py `_cfgpyc`);
pycls itself evaluated them with OpenCV's bilinear resize (pycls/datasets/transforms.py `scale`),
which we follow.

Pure Python: no TensorFlow, no numpy.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from keras_regnet.errors import ConfigError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # tf.image.resize methods
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, fraction of 255
IMAGENET_STD = (0.229, 0.224, 0.225)
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TAG = "pycls_in1k"  # the weights `weights="imagenet"` loads


@dataclass(frozen=True)
class EvalSettings:
    """How a checkpoint's eval images are made: resize the shorter side to size / crop, centre crop."""

    tag: str
    input_size: int = 224
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    source: str = "pycls"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"interpolation={self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        if not 0 < self.crop_fraction <= 1:
            raise ConfigError(f"crop_fraction={self.crop_fraction!r} must be in (0, 1]")

    def describe(self, size: int | None = None) -> str:
        """One line for model cards and metadata, e.g. 'shorter side 256, centre crop 224, bilinear'."""
        size = size or self.input_size
        return (f"shorter side {self.scale_size(size)}, centre crop {size}, {self.interpolation}, "
                f"mean {list(self.mean)} std {list(self.std)} (x255)")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (written beside exports and into keras-hub presets)."""
        return dataclasses.asdict(self)

    def scale_size(self, size: int | None = None) -> int:
        """The shorter side before the centre crop: round(size / crop_fraction), 256 for 224."""
        return int(round((size or self.input_size) / self.crop_fraction))


DEFAULT = EvalSettings(DEFAULT_TAG)  # also for our own trained models: evaluated as the reference


@dataclass(frozen=True)
class Preset:
    """One published weight set: architecture, tag, source, licence, accuracy and eval settings."""

    arch: str  # timm's architecture name, any zoo spelling: "regnety_006"
    tag: str  # "pycls_in1k"
    hf_repo: str  # Hugging Face Hub repository holding the file: "timm/regnety_006.pycls_in1k"
    licence: str  # SPDX-style id as timm's model cards give it: "mit", "apache-2.0", "cc-by-nc-4.0"
    top1: float | None  # published ImageNet-1k top-1 accuracy (%)
    top5: float | None = None
    filename: str = "model.safetensors"
    sha256: str | None = None  # of `filename`, as the Hub page publishes it; None: checked by structure
    origin_url: str | None = None  # the original publisher's file (pycls: a torch pickle, BGR stem)
    num_classes: int = 1000
    input_size: int = 224
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    eval_source: str = "timm"  # whose evaluation protocol the settings follow

    def __post_init__(self) -> None:
        if "." in self.tag or not self.tag:
            raise ConfigError(f"preset tag {self.tag!r} of {self.arch!r} must be a non-empty name without '.'")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ConfigError(f"preset {self.name!r}: num_classes={self.num_classes!r} must be a positive integer")
        self.settings  # noqa: B018  (validates interpolation and crop fraction)

    @property
    def name(self) -> str:
        """timm's tagged name, the table's key: 'regnety_006.pycls_in1k'."""
        return f"{self.arch}.{self.tag}"

    @property
    def settings(self) -> EvalSettings:
        """The eval settings of this weight (input size, crop, interpolation, mean/std)."""
        return EvalSettings(self.tag, self.input_size, self.crop_fraction, self.interpolation,
                            self.mean, self.std, self.eval_source)

    def url(self, endpoint: str | None = None) -> str:
        """Download URL; `endpoint` (default $HF_ENDPOINT or huggingface.co) allows a mirror."""
        base = (endpoint or os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")
        return f"{base}/{self.hf_repo}/resolve/main/{self.filename}"


_PYCLS_URL = "https://dl.fbaipublicfiles.com/pycls/dds_baselines/{}/{}_dds_8gpu.pyth"


def _pycls(arch: str, display: str, top1_err: float, top5_err: float, pycls_id: str,
           sha256: str | None = None) -> Preset:
    """A pycls model-zoo weight (errors as pycls publishes them) as timm re-hosts it."""
    return Preset(arch, DEFAULT_TAG, f"timm/{arch}.{DEFAULT_TAG}", "mit", round(100.0 - top1_err, 3),
                  round(100.0 - top5_err, 3), sha256=sha256, origin_url=_PYCLS_URL.format(pycls_id, display),
                  eval_source="pycls")


# One row per weight. pycls rows: arch, display name, published top-1 / top-5 error (%), pycls id,
# SHA-256 of timm's model.safetensors where recorded (its Hub page's Git LFS details).
_ROWS: tuple[Preset, ...] = (
    _pycls("regnetx_002", "RegNetX-200MF", 31.088, 11.342, "160905981"),
    _pycls("regnetx_004", "RegNetX-400MF", 27.382, 9.076, "160905967",
           "ecdce54f8bbd8f932653a04ad38aff6fd6e3b52ab16c32393b25390188e0e447"),
    _pycls("regnetx_006", "RegNetX-600MF", 25.864, 8.198, "160906442"),
    _pycls("regnetx_008", "RegNetX-800MF", 24.846, 7.592, "160906036"),
    _pycls("regnetx_016", "RegNetX-1.6GF", 23.038, 6.484, "160990626"),
    _pycls("regnetx_032", "RegNetX-3.2GF", 21.736, 5.862, "160906139"),
    _pycls("regnetx_040", "RegNetX-4.0GF", 21.356, 5.736, "160906383"),
    _pycls("regnetx_064", "RegNetX-6.4GF", 20.844, 5.434, "161116590"),
    _pycls("regnetx_080", "RegNetX-8.0GF", 20.728, 5.42, "161107726"),
    _pycls("regnetx_120", "RegNetX-12GF", 20.288, 5.284, "160906020"),
    _pycls("regnetx_160", "RegNetX-16GF", 19.956, 5.022, "158460855"),
    _pycls("regnetx_320", "RegNetX-32GF", 19.498, 4.878, "158188473"),
    _pycls("regnety_002", "RegNetY-200MF", 29.658, 10.378, "176245422"),
    _pycls("regnety_004", "RegNetY-400MF", 25.898, 8.07, "160906449"),
    _pycls("regnety_006", "RegNetY-600MF", 24.54, 7.28, "160981443"),
    _pycls("regnety_008", "RegNetY-800MF", 23.684, 6.846, "160906567"),
    _pycls("regnety_016", "RegNetY-1.6GF", 22.066, 6.134, "160906681"),
    _pycls("regnety_032", "RegNetY-3.2GF", 21.074, 5.454, "160906834"),
    _pycls("regnety_040", "RegNetY-4.0GF", 20.64, 5.336, "160906838"),
    _pycls("regnety_064", "RegNetY-6.4GF", 20.11, 5.1, "160907112"),
    _pycls("regnety_080", "RegNetY-8.0GF", 20.052, 5.06, "161160905"),
    _pycls("regnety_120", "RegNetY-12GF", 19.67, 4.856, "160907100"),
    _pycls("regnety_160", "RegNetY-16GF", 19.608, 4.944, "161303400"),
    _pycls("regnety_320", "RegNetY-32GF", 19.066, 4.568, "161277763"),
)

PRESETS: dict[str, Preset] = {row.name: row for row in _ROWS}
