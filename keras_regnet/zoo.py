"""The zoo: the 24 RegNetX/RegNetY models of the paper, plus six beyond it whose published weights we load.

Only the six RegNet numbers per model are stored; stage widths, depths and group widths come out
of the rule (`RegNetParams.to_spec`). Training recipes are from the pycls model zoo (Radosavovic et
al. 2020); the published errors are its weights', read from their rows of the presets table
(`keras_regnet.presets`), as every fact of a weight is.

Beyond the paper (`ZooEntry.beyond_paper` says where each comes from): RegNetY-64GF, -128GF and
-256GF, the SEER/SWAG sizes (timm's `regnety_640/1280/2560` parameters), and three models on
torchvision's width rounding (timm's `regnetx_004_tv`, `regnety_008_tv`, `regnety_080_tv`: the
paper's parameters, widths rounded as `regnet.torchvision_group_rounding` does), which torchvision's
weights need. They have no pycls weights, so `weights="imagenet"` is refused for them; their
recipes are the nearest paper model's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keras_regnet.errors import ConfigError
from keras_regnet.presets import DEFAULT_TAG, PRESETS, Preset
from keras_regnet.regnet import RegNetParams
from keras_regnet.spec import NetSpec


@dataclass(frozen=True)
class ZooEntry:
    """A published model: name, RegNet parameters and recipe; its weights' figures from the presets."""

    name: str  # canonical id, e.g. "regnety_600mf"
    display_name: str  # e.g. "RegNetY-600MF"
    params: RegNetParams
    batch_size: int
    base_lr: float
    beyond_paper: str = ""  # where a model outside the paper's 24 comes from; "" for the paper's

    @property
    def variant(self) -> str:
        """'tv' for the torchvision-rounded models (RegNetX-400MF-tv), '' otherwise."""
        parts = self.display_name.split("-")
        return parts[2] if len(parts) > 2 else ""

    @property
    def keras2_name(self) -> str:
        """Keras 2 keras.applications name (or its pattern beyond the paper), e.g. RegNetY006, RegNetY640."""
        return f"RegNet{self.display_name[6]}{_KERAS2_SUFFIX[self.flops_label]:s}" + self._suffix

    @property
    def function_name(self) -> str:
        """Builder function name, e.g. RegNetY1_6GF, RegNetX400MF_tv."""
        base = "-".join(self.display_name.split("-")[:2])
        return base.replace("-", "").replace(".", "_") + self._suffix

    @property
    def timm_name(self) -> str:
        """timm's architecture name, e.g. RegNetY-600MF -> regnety_006, RegNetX-400MF-tv -> regnetx_004_tv."""
        return f"regnet{self.display_name[6].lower()}_{_KERAS2_SUFFIX[self.flops_label]}" + self._suffix

    @property
    def _suffix(self) -> str:
        return f"_{self.variant}" if self.variant else ""

    @property
    def flops_label(self) -> str:
        """The size in the display name, e.g. '600MF'."""
        return self.display_name.split("-")[1]

    @property
    def reference_weights(self) -> Preset | None:
        """The presets row of the reference's (pycls's) weights, which `weights="imagenet"` loads;
        None for the models beyond the paper."""
        return PRESETS.get(f"{self.timm_name}.{DEFAULT_TAG}")

    @property
    def top1_err(self) -> float | None:
        """Published ImageNet top-1 error (%) of the reference's weights (None beyond the paper)."""
        row = self.reference_weights
        return None if row is None else round(100.0 - row.top1, 3)

    @property
    def top5_err(self) -> float | None:
        """Published ImageNet top-5 error (%) of the reference's weights (None beyond the paper)."""
        row = self.reference_weights
        return None if row is None else round(100.0 - row.top5, 3)

    def spec(self) -> NetSpec:
        return self.params.to_spec(name=self.name)


_KERAS2_SUFFIX = {
    "200MF": "002", "400MF": "004", "600MF": "006", "800MF": "008", "1.6GF": "016", "3.2GF": "032",
    "4.0GF": "040", "6.4GF": "064", "8.0GF": "080", "12GF": "120", "16GF": "160", "32GF": "320",
    "64GF": "640", "128GF": "1280", "256GF": "2560",
}

# display name: depth, w0, wa, wm, group width, batch size, base lr
_TABLE = {
    "RegNetX-200MF": (13, 24, 36.44, 2.49, 8, 1024, 0.8),
    "RegNetX-400MF": (22, 24, 24.48, 2.54, 16, 1024, 0.8),
    "RegNetX-600MF": (16, 48, 36.97, 2.24, 24, 1024, 0.8),
    "RegNetX-800MF": (16, 56, 35.73, 2.28, 16, 1024, 0.8),
    "RegNetX-1.6GF": (18, 80, 34.01, 2.25, 24, 1024, 0.8),
    "RegNetX-3.2GF": (25, 88, 26.31, 2.25, 48, 512, 0.4),
    "RegNetX-4.0GF": (23, 96, 38.65, 2.43, 40, 512, 0.4),
    "RegNetX-6.4GF": (17, 184, 60.83, 2.07, 56, 512, 0.4),
    "RegNetX-8.0GF": (23, 80, 49.56, 2.88, 120, 512, 0.4),
    "RegNetX-12GF": (19, 168, 73.36, 2.37, 112, 512, 0.4),
    "RegNetX-16GF": (22, 216, 55.59, 2.1, 128, 512, 0.4),
    "RegNetX-32GF": (23, 320, 69.86, 2.0, 168, 256, 0.2),
    "RegNetY-200MF": (13, 24, 36.44, 2.49, 8, 1024, 0.8),
    "RegNetY-400MF": (16, 48, 27.89, 2.09, 8, 1024, 0.8),
    "RegNetY-600MF": (15, 48, 32.54, 2.32, 16, 1024, 0.8),
    "RegNetY-800MF": (14, 56, 38.84, 2.4, 16, 1024, 0.8),
    "RegNetY-1.6GF": (27, 48, 20.71, 2.65, 24, 1024, 0.8),
    "RegNetY-3.2GF": (21, 80, 42.63, 2.66, 24, 512, 0.4),
    "RegNetY-4.0GF": (22, 96, 31.41, 2.24, 64, 512, 0.4),
    "RegNetY-6.4GF": (25, 112, 33.22, 2.27, 72, 512, 0.4),
    "RegNetY-8.0GF": (17, 192, 76.82, 2.19, 56, 512, 0.4),
    "RegNetY-12GF": (19, 168, 73.36, 2.37, 112, 512, 0.4),
    "RegNetY-16GF": (18, 200, 106.23, 2.48, 112, 256, 0.2),
    "RegNetY-32GF": (20, 232, 115.89, 2.53, 232, 256, 0.2),
}


def _canonical(display_name: str) -> str:
    """RegNetY-1.6GF -> regnety_1.6gf"""
    return display_name.lower().replace("-", "_")


_SEER = "SEER/SWAG size (Goyal et al. 2021, Singh et al. 2022); parameters of timm's regnety_{}"
_TV = "torchvision's width rounding of the paper's {}; timm's {}"

# Beyond the paper: display name: depth, w0, wa, wm, group width, batch size, base lr, group rounding, source
_BEYOND = {
    "RegNetY-64GF": (20, 352, 147.48, 2.4, 328, 256, 0.2, "pycls", _SEER.format("640")),
    "RegNetY-128GF": (27, 456, 160.83, 2.52, 264, 256, 0.2, "pycls", _SEER.format("1280")),
    "RegNetY-256GF": (27, 640, 230.83, 2.53, 373, 256, 0.2, "pycls", _SEER.format("2560")),
    "RegNetX-400MF-tv": (*_TABLE["RegNetX-400MF"], "torchvision", _TV.format("RegNetX-400MF", "regnetx_004_tv")),
    "RegNetY-800MF-tv": (*_TABLE["RegNetY-800MF"], "torchvision", _TV.format("RegNetY-800MF", "regnety_008_tv")),
    "RegNetY-8.0GF-tv": (*_TABLE["RegNetY-8.0GF"], "torchvision", _TV.format("RegNetY-8.0GF", "regnety_080_tv")),
}

ZOO: dict[str, ZooEntry] = {}
for _display, (_d, _w0, _wa, _wm, _g, _bs, _lr, *_extra) in {**_TABLE, **_BEYOND}.items():
    _se = 0.25 if _display.startswith("RegNetY") else 0.0
    _rounding, _source = _extra or ("pycls", "")
    _entry = ZooEntry(
        _canonical(_display), _display,
        RegNetParams(_d, _w0, _wa, _wm, _g, 1.0, _se, group_rounding=_rounding), _bs, _lr, _source,
    )
    ZOO[_entry.name] = _entry


def _normalise(name: str) -> str:
    """Lower-case, '1_6' -> '1.6', drop separators: every spelling of a name maps to one key."""
    name = re.sub(r"(?<=\d)_(?=\d)", ".", name.lower())
    return re.sub(r"[^a-z0-9.]", "", name)


# Every spelling users write: regnety_600mf, RegNetY-600MF, RegNetY600MF, RegNetY006, regnety_006,
# regnety_1_6gf, RegNetY1_6GF.
_ALIASES: dict[str, str] = {}
for _entry in ZOO.values():
    for _alias in (
        _entry.name, _entry.display_name, _entry.function_name, _entry.keras2_name,
        _entry.timm_name,
    ):
        _ALIASES[_normalise(_alias)] = _entry.name


def list_models(beyond_paper: bool = True) -> list[str]:
    """Canonical names of the zoo models, e.g. 'regnety_600mf': the paper's 24, then (unless
    `beyond_paper=False`) the six beyond it (regnety_64gf, ..., regnetx_400mf_tv, ...)."""
    return [name for name, entry in ZOO.items() if beyond_paper or not entry.beyond_paper]


def get_entry(name: str) -> ZooEntry:
    """Look up a zoo model by any common spelling; unknown names list what is available."""
    if not isinstance(name, str):
        raise ConfigError(f"model name must be a string, got {name!r}")
    canonical = _ALIASES.get(_normalise(name))
    if canonical is None:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return ZOO[canonical]

