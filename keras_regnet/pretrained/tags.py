"""timm's tagged names (`regnety_006.pycls_in1k`) and the eval settings each weight was scored with.

One table, `EVAL_SETTINGS`, keyed by weight tag, says how the images of a checkpoint are prepared at
evaluation (input size, crop fraction, interpolation, mean/std); training's evaluation, the
SavedModel's image-bytes signature, `tflite.predict` and the keras-hub image converter read it.
timm records the same facts per checkpoint in `pretrained_cfg`. For the pycls weights timm says
`interpolation="bicubic"` (timm/models/regnet.py `_cfgpyc`); pycls itself evaluated them with
OpenCV's bilinear resize (pycls/datasets/transforms.py `scale`), which we follow.

Pure Python: no TensorFlow, no numpy.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

from keras_regnet.errors import ConfigError, WeightsError
from keras_regnet.spec import NetSpec
from keras_regnet.zoo import ZOO, ZooEntry, get_entry

IMAGENET = "imagenet"  # keras.applications' name for the default pretrained weights
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # tf.image.resize methods
HUB_PREFIXES = ("hf://timm/", "hf-hub:timm/", "timm/")  # how the Hub and timm write a repo id


@dataclass(frozen=True)
class EvalSettings:
    """How a checkpoint's eval images are made: resize the shorter side to size / crop, centre crop."""

    tag: str
    input_size: int = 224
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # RGB, fraction of 255
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
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


DEFAULT_TAG = "pycls_in1k"
DEFAULT = EvalSettings(DEFAULT_TAG)


def timm_arch(entry: ZooEntry) -> str:
    """timm architecture name of a zoo model: RegNetY-600MF -> regnety_006."""
    return f"regnet{entry.display_name[6].lower()}_{entry.keras2_name[-3:]}"


def tagged_name(entry: ZooEntry, tag: str = DEFAULT_TAG) -> str:
    """timm's tagged name of a zoo model's weights, e.g. 'regnety_006.pycls_in1k'."""
    return f"{timm_arch(entry)}.{tag}"


# Every weight we can load, by timm's tagged name. timm's pretrained_cfg for these differs from ours
# only in interpolation (bicubic there; pycls, which trained and scored them, resized bilinearly).
EVAL_SETTINGS: dict[str, EvalSettings] = {tagged_name(entry): DEFAULT for entry in ZOO.values()}
TAGS: tuple[str, ...] = tuple(sorted({settings.tag for settings in EVAL_SETTINGS.values()}))

_TAGGED = re.compile(r"^(?P<arch>[A-Za-z0-9_.\-]+?)\.(?P<tag>[a-z][a-z0-9_]*_[a-z0-9_]+)$")


def split_tagged(name: str) -> tuple[str, str] | None:
    """('regnety_006', 'pycls_in1k') for 'regnety_006.pycls_in1k' (also 'hf://timm/...'); None for
    names without a tag ('regnety_1.6gf' has a dot but no tag)."""
    text = name.strip()
    for prefix in HUB_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
    match = _TAGGED.match(text)
    return (match["arch"], match["tag"]) if match else None


def resolve_tagged(name: str, label: str = "model") -> tuple[ZooEntry, EvalSettings] | None:
    """(zoo entry, eval settings) of a tagged name; None when `name` carries no tag.

    A zoo architecture with a tag we do not hold, or a tag on an unknown architecture, is a
    ConfigError that lists the tagged names we have.
    """
    parts = split_tagged(name)
    if parts is None:
        return None
    arch, tag = parts
    try:
        entry = get_entry(arch)
    except ValueError as err:
        raise ConfigError(f"{label}={name!r}: {arch!r} is not a zoo model; tagged names we have: "
                          f"{_examples()}") from err
    settings = EVAL_SETTINGS.get(tagged_name(entry, tag))
    if settings is None:
        raise ConfigError(f"{label}={name!r}: no weights tagged {tag!r} for {timm_arch(entry)}; tags we "
                          f"have: {', '.join(TAGS)} (e.g. {tagged_name(entry)})")
    return entry, settings


def canonical_weights(weights: object, spec: NetSpec) -> object:
    """'imagenet' for a weight tag naming `spec`'s zoo weights ('pycls_in1k', 'regnety_006.pycls_in1k',
    'hf://timm/regnety_006.pycls_in1k'); anything else is returned unchanged."""
    if not isinstance(weights, str) or weights == IMAGENET or os.path.exists(weights):
        return weights
    if weights in TAGS:
        return IMAGENET
    try:
        found = resolve_tagged(weights, "weights")
    except ConfigError as err:
        raise WeightsError(str(err)) from err
    if found is None:
        return weights
    entry, _ = found
    if dataclasses.replace(entry.spec(), name="_") != dataclasses.replace(spec, name="_"):
        raise WeightsError(f"weights={weights!r} are {entry.display_name}'s, but the model is "
                           f"{spec.name!r}, another network; use weights='imagenet' or its own tagged name")
    return IMAGENET


def eval_settings(model: object = None, weights: object = None) -> EvalSettings:
    """The eval settings of tagged `weights`, else of zoo `model`'s weights (any spelling or tagged
    name); the pycls default otherwise (our own trained models are evaluated as the reference)."""
    if isinstance(weights, str) and not os.path.exists(weights) and split_tagged(weights):
        model = weights
    if not isinstance(model, str):
        return DEFAULT
    found = resolve_tagged(model)
    if found is not None:
        return found[1]
    try:
        return EVAL_SETTINGS[tagged_name(get_entry(model))]
    except ValueError:
        return DEFAULT


def _examples() -> str:
    names = [tagged_name(entry) for entry in ZOO.values()]
    return f"{', '.join(names[:3])}, ... ({len(names)} in all: the zoo's names with .{DEFAULT_TAG})"
