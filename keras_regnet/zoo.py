"""The 24 published RegNetX/RegNetY models: their design parameters and published figures.

Only the six RegNet numbers per model are stored; stage widths, depths and group widths come out
of the rule (`RegNetParams.to_spec`). Published errors and training recipes are from the pycls
model zoo (Radosavovic et al. 2020).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keras_regnet.errors import ConfigError
from keras_regnet.regnet import RegNetParams
from keras_regnet.spec import NetSpec

_PYCLS_URL = "https://dl.fbaipublicfiles.com/pycls/dds_baselines/{}/{}_dds_8gpu.pyth"


@dataclass(frozen=True)
class ZooEntry:
    """A published model: name, RegNet parameters, published ImageNet error and recipe."""

    name: str  # canonical id, e.g. "regnety_600mf"
    display_name: str  # e.g. "RegNetY-600MF"
    params: RegNetParams
    top1_err: float
    top5_err: float
    batch_size: int
    base_lr: float
    pycls_id: str

    @property
    def keras2_name(self) -> str:
        """Keras 2 keras.applications name, e.g. RegNetY006."""
        return f"RegNet{self.display_name[6]}{_KERAS2_SUFFIX[self.flops_label]:s}"

    @property
    def function_name(self) -> str:
        """Builder function name, e.g. RegNetY1_6GF."""
        return self.display_name.replace("-", "").replace(".", "_")

    @property
    def flops_label(self) -> str:
        return self.display_name.split("-")[1]

    @property
    def weights_url(self) -> str:
        return _PYCLS_URL.format(self.pycls_id, self.display_name)

    def spec(self) -> NetSpec:
        return self.params.to_spec(name=self.name)


_KERAS2_SUFFIX = {
    "200MF": "002", "400MF": "004", "600MF": "006", "800MF": "008", "1.6GF": "016", "3.2GF": "032",
    "4.0GF": "040", "6.4GF": "064", "8.0GF": "080", "12GF": "120", "16GF": "160", "32GF": "320",
}

# display name: depth, w0, wa, wm, group width, top1 err, top5 err, batch size, base lr, pycls id
_TABLE = {
    "RegNetX-200MF": (13, 24, 36.44, 2.49, 8, 31.088, 11.342, 1024, 0.8, "160905981"),
    "RegNetX-400MF": (22, 24, 24.48, 2.54, 16, 27.382, 9.076, 1024, 0.8, "160905967"),
    "RegNetX-600MF": (16, 48, 36.97, 2.24, 24, 25.864, 8.198, 1024, 0.8, "160906442"),
    "RegNetX-800MF": (16, 56, 35.73, 2.28, 16, 24.846, 7.592, 1024, 0.8, "160906036"),
    "RegNetX-1.6GF": (18, 80, 34.01, 2.25, 24, 23.038, 6.484, 1024, 0.8, "160990626"),
    "RegNetX-3.2GF": (25, 88, 26.31, 2.25, 48, 21.736, 5.862, 512, 0.4, "160906139"),
    "RegNetX-4.0GF": (23, 96, 38.65, 2.43, 40, 21.356, 5.736, 512, 0.4, "160906383"),
    "RegNetX-6.4GF": (17, 184, 60.83, 2.07, 56, 20.844, 5.434, 512, 0.4, "161116590"),
    "RegNetX-8.0GF": (23, 80, 49.56, 2.88, 120, 20.728, 5.42, 512, 0.4, "161107726"),
    "RegNetX-12GF": (19, 168, 73.36, 2.37, 112, 20.288, 5.284, 512, 0.4, "160906020"),
    "RegNetX-16GF": (22, 216, 55.59, 2.1, 128, 19.956, 5.022, 512, 0.4, "158460855"),
    "RegNetX-32GF": (23, 320, 69.86, 2.0, 168, 19.498, 4.878, 256, 0.2, "158188473"),
    "RegNetY-200MF": (13, 24, 36.44, 2.49, 8, 29.658, 10.378, 1024, 0.8, "176245422"),
    "RegNetY-400MF": (16, 48, 27.89, 2.09, 8, 25.898, 8.07, 1024, 0.8, "160906449"),
    "RegNetY-600MF": (15, 48, 32.54, 2.32, 16, 24.54, 7.28, 1024, 0.8, "160981443"),
    "RegNetY-800MF": (14, 56, 38.84, 2.4, 16, 23.684, 6.846, 1024, 0.8, "160906567"),
    "RegNetY-1.6GF": (27, 48, 20.71, 2.65, 24, 22.066, 6.134, 1024, 0.8, "160906681"),
    "RegNetY-3.2GF": (21, 80, 42.63, 2.66, 24, 21.074, 5.454, 512, 0.4, "160906834"),
    "RegNetY-4.0GF": (22, 96, 31.41, 2.24, 64, 20.64, 5.336, 512, 0.4, "160906838"),
    "RegNetY-6.4GF": (25, 112, 33.22, 2.27, 72, 20.11, 5.1, 512, 0.4, "160907112"),
    "RegNetY-8.0GF": (17, 192, 76.82, 2.19, 56, 20.052, 5.06, 512, 0.4, "161160905"),
    "RegNetY-12GF": (19, 168, 73.36, 2.37, 112, 19.67, 4.856, 512, 0.4, "160907100"),
    "RegNetY-16GF": (18, 200, 106.23, 2.48, 112, 19.608, 4.944, 256, 0.2, "161303400"),
    "RegNetY-32GF": (20, 232, 115.89, 2.53, 232, 19.066, 4.568, 256, 0.2, "161277763"),
}


def _canonical(display_name: str) -> str:
    """RegNetY-1.6GF -> regnety_1.6gf"""
    return display_name.lower().replace("-", "_")


ZOO: dict[str, ZooEntry] = {}
for _display, (_d, _w0, _wa, _wm, _g, _t1, _t5, _bs, _lr, _pid) in _TABLE.items():
    _se = 0.25 if _display.startswith("RegNetY") else 0.0
    _entry = ZooEntry(
        _canonical(_display), _display, RegNetParams(_d, _w0, _wa, _wm, _g, 1.0, _se),
        _t1, _t5, _bs, _lr, _pid,
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
        f"regnet{_entry.display_name[6].lower()}_{_KERAS2_SUFFIX[_entry.flops_label]}",
    ):
        _ALIASES[_normalise(_alias)] = _entry.name


def list_models() -> list[str]:
    """Canonical names of the 24 zoo models, e.g. 'regnety_600mf'."""
    return list(ZOO)


def get_entry(name: str) -> ZooEntry:
    """Look up a zoo model by any common spelling; unknown names list what is available."""
    if not isinstance(name, str):
        raise ConfigError(f"model name must be a string, got {name!r}")
    canonical = _ALIASES.get(_normalise(name))
    if canonical is None:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return ZOO[canonical]

