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

The other rows: every weight timm publishes for a plain RegNetX/RegNetY that our zoo builds exactly
(timm/models/regnet.py `default_cfgs`, figures from timm's results/results-imagenet.csv at each
weight's own input size and crop): timm's own (`ra_in1k`, `ra3_in1k`, `sw_in12k_ft_in1k`,
`lion_in12k_ft_in1k`, Apache-2.0; `sw_in12k`, 11821 classes), DeiT's `deit_in1k` (timm states
Apache-2.0), torchvision's `tv2_in1k` (BSD-3-Clause; three on torchvision's width rounding, the zoo's
`*_tv` models), SWAG's `swag_ft_in1k` / `swag_lc_in1k` (CC-BY-NC-4.0) and SEER's `seer_ft_in1k` /
headless `seer` (the SEER licence). All are timm's Hub repositories' `model.safetensors`; timm's
eval settings (bicubic) are used. Which weights were left out, and why: docs/weights.md.

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
PERMISSIVE_LICENCES = ("mit", "apache-2.0", "bsd-3-clause")  # loading any other licence is logged
HEADLESS = 0  # num_classes of a weight published without a classifier (SEER's pretrained trunks)


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
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ConfigError(f"preset {self.name!r}: num_classes={self.num_classes!r} must be a positive integer "
                              f"or {HEADLESS} (headless)")
        self.settings  # noqa: B018  (validates interpolation and crop fraction)

    @property
    def name(self) -> str:
        """timm's tagged name, the table's key: 'regnety_006.pycls_in1k'."""
        return f"{self.arch}.{self.tag}"

    @property
    def permissive(self) -> bool:
        """Whether the licence lets anyone use the weights commercially (MIT, Apache-2.0, BSD-3-Clause)."""
        return self.licence in PERMISSIVE_LICENCES

    @property
    def headless(self) -> bool:
        """Published without a classifier (loaded with include_top=False)."""
        return self.num_classes == HEADLESS

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

_TV_URL = "https://download.pytorch.org/models/{}.pth"  # torchvision's file; the name ends in its SHA-256 prefix
_SEER_URL = "https://dl.fbaipublicfiles.com/vissl/model_zoo/{}.torch"
_TIMM_URL = "https://github.com/huggingface/pytorch-image-models/releases/download/{}.pth"


def _timm(arch: str, tag: str, top1: float | None, top5: float | None, *, licence: str = "apache-2.0",
          origin_url: str | None = None, num_classes: int = 1000, input_size: int = 224,
          crop_fraction: float = 0.95) -> Preset:
    """A weight on timm's Hub (`timm/<arch>.<tag>`, model.safetensors) with timm's eval settings:
    bicubic, ImageNet mean/std; timm's `_cfg` defaults are 224 px at crop 0.95."""
    return Preset(arch, tag, f"timm/{arch}.{tag}", licence, top1, top5, origin_url=origin_url,
                  num_classes=num_classes, input_size=input_size, crop_fraction=crop_fraction,
                  interpolation="bicubic", eval_source="timm")


def _tv2(arch: str, top1: float, top5: float, file: str) -> Preset:
    """torchvision's IMAGENET1K_V2 weights as timm re-hosts them (`_cfgtv2`: 224 px, crop 0.965)."""
    return _timm(arch, "tv2_in1k", top1, top5, licence="bsd-3-clause", origin_url=_TV_URL.format(file),
                 crop_fraction=0.965)


def _swag(arch: str, tag: str, top1: float, top5: float, file: str) -> Preset:
    """SWAG (Singh et al. 2022) via torchvision: fine-tuned end to end at 384 px (crop 1.0), or a linear
    classifier on the frozen trunk at 224 px (crop 0.965); CC-BY-NC-4.0."""
    size, crop = (384, 1.0) if tag == "swag_ft_in1k" else (224, 0.965)
    return _timm(arch, tag, top1, top5, licence="cc-by-nc-4.0", origin_url=_TV_URL.format(file),
                 input_size=size, crop_fraction=crop)


def _seer(arch: str, tag: str, top1: float | None, top5: float | None, file: str) -> Preset:
    """SEER (Goyal et al. 2021) from VISSL: fine-tuned on ImageNet-1k at 384 px (crop 1.0), or the
    self-supervised trunk alone (headless); the SEER licence (non-commercial research use)."""
    size, crop = (384, 1.0) if tag == "seer_ft_in1k" else (224, 0.965)
    return _timm(arch, tag, top1, top5, licence="seer-license", origin_url=_SEER_URL.format(file),
                 num_classes=1000 if tag == "seer_ft_in1k" else HEADLESS, input_size=size, crop_fraction=crop)


# timm's own, DeiT's, torchvision's, SWAG's and SEER's weights: arch, tag, published top-1 / top-5 (%) at
# the row's input size and crop (timm's results-imagenet.csv), the original file.
_ROWS += (
    _timm("regnety_032", "ra_in1k", 81.948, 95.972, origin_url=_TIMM_URL.format("v0.1-weights/regnety_032_ra-7f2439f9")),
    _timm("regnety_040", "ra3_in1k", 82.308, 96.078,
          origin_url=_TIMM_URL.format("v0.1-tpu-weights/regnety_040_ra3-670e1166")),
    _timm("regnety_064", "ra3_in1k", 83.006, 96.296,
          origin_url=_TIMM_URL.format("v0.1-tpu-weights/regnety_064_ra3-aa26dc7d")),
    _timm("regnety_080", "ra3_in1k", 83.166, 96.48,
          origin_url=_TIMM_URL.format("v0.1-tpu-weights/regnety_080_ra3-1fdc4344")),
    _timm("regnety_120", "sw_in12k_ft_in1k", 84.994, 97.412),
    _timm("regnety_160", "sw_in12k_ft_in1k", 85.596, 97.668),
    _timm("regnety_160", "lion_in12k_ft_in1k", 85.602, 97.668),
    _timm("regnety_120", "sw_in12k", None, None, num_classes=11821),
    _timm("regnety_160", "sw_in12k", None, None, num_classes=11821),
    _timm("regnety_160", "deit_in1k", 83.0, 96.502, origin_url="https://dl.fbaipublicfiles.com/deit/regnety_160-a5fe301d.pth"),
    _tv2("regnetx_004_tv", 74.596, 92.14, "regnet_x_400mf-62229a5f"),
    _tv2("regnetx_008", 77.294, 93.664, "regnet_x_800mf-94a99ebd"),
    _tv2("regnetx_016", 79.44, 94.768, "regnet_x_1_6gf-a12f2b72"),
    _tv2("regnetx_032", 80.916, 95.248, "regnet_x_3_2gf-7071aa85"),
    _tv2("regnetx_080", 81.552, 95.54, "regnet_x_8gf-2b70d774"),
    _tv2("regnetx_160", 82.574, 96.058, "regnet_x_16gf-ba3796d7"),
    _tv2("regnetx_320", 82.824, 96.2, "regnet_x_32gf-6eb8fdc6"),
    _tv2("regnety_004", 75.594, 92.706, "regnet_y_400mf-e6988f5f"),
    _tv2("regnety_008_tv", 78.672, 94.38, "regnet_y_800mf-58fc7688"),
    _tv2("regnety_016", 80.668, 95.336, "regnet_y_1_6gf-0d7bc02a"),
    _tv2("regnety_032", 81.788, 95.826, "regnet_y_3_2gf-9180c971"),
    _tv2("regnety_080_tv", 82.58, 96.26, "regnet_y_8gf-dc2b1b54"),
    _tv2("regnety_160", 82.646, 96.23, "regnet_y_16gf-3e4a00f9"),
    _tv2("regnety_320", 83.17, 96.416, "regnet_y_32gf-8db6d4b5"),
    _swag("regnety_160", "swag_ft_in1k", 86.02, 98.046, "regnet_y_16gf_swag-43afe44d"),
    _swag("regnety_320", "swag_ft_in1k", 86.83, 98.362, "regnet_y_32gf_swag-04fdfa75"),
    _swag("regnety_1280", "swag_ft_in1k", 88.228, 98.684, "regnet_y_128gf_swag-c8ce3e52"),
    _swag("regnety_160", "swag_lc_in1k", 83.806, 97.284, "regnet_y_16gf_lc_swag-f3ec0043"),
    _swag("regnety_320", "swag_lc_in1k", 84.654, 97.492, "regnet_y_32gf_lc_swag-e1583746"),
    _swag("regnety_1280", "swag_lc_in1k", 85.964, 97.852, "regnet_y_128gf_lc_swag-cbe8ce12"),
    _seer("regnety_320", "seer_ft_in1k", 83.324, 96.712,
          "seer_finetuned/seer_regnet32_finetuned_in1k_model_final_checkpoint_phase78"),
    _seer("regnety_640", "seer_ft_in1k", 83.924, 96.926,
          "seer_finetuned/seer_regnet64_finetuned_in1k_model_final_checkpoint_phase78"),
    _seer("regnety_1280", "seer_ft_in1k", 84.426, 97.086,
          "seer_finetuned/seer_regnet128_finetuned_in1k_model_final_checkpoint_phase78"),
    _seer("regnety_2560", "seer_ft_in1k", 85.144, 97.444,
          "seer_finetuned/seer_regnet256_finetuned_in1k_model_final_checkpoint_phase38"),
    _seer("regnety_320", "seer", None, None, "seer_regnet32d/seer_regnet32gf_model_iteration244000"),
    _seer("regnety_640", "seer", None, None, "seer_regnet64/seer_regnet64gf_model_final_checkpoint_phase0"),
    _seer("regnety_1280", "seer", None, None, "swav_ig1b_regnet128Gf_cnstant_bs32_node16_sinkhorn10_proto16k_"
          "syncBN64_warmup8k/model_final_checkpoint_phase0"),
)

PRESETS: dict[str, Preset] = {row.name: row for row in _ROWS}
