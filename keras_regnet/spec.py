"""Plain-data network specs: every RegNet/AnyNet is a NetSpec before it is a Keras model.

Pure Python (no TensorFlow) so that specs can be sampled, validated, costed and stored as JSON
in microseconds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from keras_regnet.errors import ConfigError

BLOCK_TYPES = ("v", "r", "x", "y")
BLOCK_NAMES = {
    "v": "vanilla (two 3x3 convs, no shortcut)",
    "r": "residual basic (two 3x3 convs + shortcut)",
    "x": "X block (residual bottleneck with grouped 3x3)",
    "y": "Y block (X block + squeeze-excitation)",
}


def round_int(x: Any) -> Any:
    """Round half to even to an integer: an int for a number, an int64 array for a batch of them.

    The walk's width arithmetic goes through this so it can cost one network or a numpy batch.
    """
    if isinstance(x, np.ndarray):
        return np.round(x).astype(np.int64)
    return int(round(x))


def bottleneck_width(width: Any, bottleneck_ratio: Any) -> Any:
    """Inner width of a bottleneck block: round(width * bottleneck_ratio), as the reference computes it.

    `bottleneck_ratio` is a multiplier (pycls's BOT_MUL, timm's bottle_ratio), the inverse of the
    paper's bottleneck ratio b (inner width w / b): the paper's b = 2 is bottleneck_ratio = 0.5.
    Widths and ratios may be numpy arrays (a batch of networks).
    """
    return round_int(width * bottleneck_ratio)


def paper_bottleneck(bottleneck_ratio: float) -> float:
    """The paper's b (inner width = width / b) of a StageSpec multiplier: 1 / bottleneck_ratio."""
    return 1.0 / bottleneck_ratio


@dataclass(frozen=True)
class StageSpec:
    """One stage: `depth` blocks of output `width`; the first block applies `stride`.

    `bottleneck_ratio` multiplies the width into an X/Y block's inner width (pycls's BOT_MUL, timm's
    bottle_ratio); the paper's b is its inverse, so the paper's b in {1, 2, 4} is 1.0, 0.5, 0.25.
    """

    depth: int
    width: int
    stride: int = 2
    bottleneck_ratio: float = 1.0
    group_width: int = 1

    def validate(self, index: int = 0, block: str = "x") -> None:
        """Raise ValueError naming the offending field if this stage cannot be built."""
        where = f"stage {index + 1}"
        _check_int(self.depth, f"{where} depth", minimum=1)
        _check_int(self.width, f"{where} width", minimum=1)
        if self.stride not in (1, 2):
            raise ConfigError(f"{where} stride must be 1 or 2, got {self.stride!r}")
        if not self.bottleneck_ratio > 0:
            raise ConfigError(f"{where} bottleneck_ratio must be > 0, got {self.bottleneck_ratio!r}")
        _check_int(self.group_width, f"{where} group_width", minimum=1)
        if block in ("x", "y"):
            w_b = bottleneck_width(self.width, self.bottleneck_ratio)
            if w_b < 1:
                raise ConfigError(
                    f"{where}: bottleneck width round({self.width} * {self.bottleneck_ratio}) "
                    f"= {w_b} must be >= 1"
                )
            if self.group_width > w_b or w_b % self.group_width:
                raise ConfigError(
                    f"{where}: group_width {self.group_width} must divide the bottleneck width "
                    f"{w_b} (= round(width {self.width} * bottleneck_ratio "
                    f"{self.bottleneck_ratio})); use keras_regnet.regnet.adjust_block_compatibility "
                    f"to make them compatible"
                )

    @property
    def groups(self) -> int:
        """Number of groups of the 3x3 conv of an X/Y block."""
        return bottleneck_width(self.width, self.bottleneck_ratio) // self.group_width


@dataclass(frozen=True)
class NetSpec:
    """A whole network: stem, stages of blocks, and the block type shared by all stages."""

    stages: tuple[StageSpec, ...]
    block: str = "x"
    se_ratio: float = 0.0
    stem_width: int = 32
    stem_stride: int = 2
    name: str = "regnet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))

    def validate(self) -> "NetSpec":
        """Check every field; return self so calls can be chained."""
        if self.block not in BLOCK_TYPES:
            raise ConfigError(f"block must be one of {BLOCK_TYPES}, got {self.block!r}")
        if not self.stages:
            raise ConfigError("a NetSpec needs at least one stage, got stages=()")
        if self.block == "y" and not 0 < self.se_ratio <= 1:
            raise ConfigError(f"block 'y' needs 0 < se_ratio <= 1, got se_ratio={self.se_ratio!r}")
        if self.block != "y" and self.se_ratio != 0:
            raise ConfigError(
                f"se_ratio={self.se_ratio!r} is only allowed with block 'y' "
                f"(got block {self.block!r}); use block='y' for squeeze-excitation"
            )
        _check_int(self.stem_width, "stem_width", minimum=1)
        if self.stem_stride not in (1, 2):
            raise ConfigError(f"stem_stride must be 1 or 2, got {self.stem_stride!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, got {self.name!r}")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, StageSpec):
                raise ConfigError(f"stage {i + 1} must be a StageSpec, got {type(stage).__name__}")
            stage.validate(i, self.block)
        return self

    # Convenience views -------------------------------------------------------------------
    @property
    def depths(self) -> list[int]:
        return [s.depth for s in self.stages]

    @property
    def widths(self) -> list[int]:
        return [s.width for s in self.stages]

    @property
    def group_widths(self) -> list[int]:
        return [s.group_width for s in self.stages]

    @property
    def bottleneck_ratios(self) -> list[float]:
        """Per-stage multipliers (inner width = round(width * ratio))."""
        return [s.bottleneck_ratio for s in self.stages]

    @property
    def paper_bottlenecks(self) -> list[float]:
        """Per-stage bottleneck ratios as the paper writes them: b = 1 / bottleneck_ratio."""
        return [paper_bottleneck(s.bottleneck_ratio) for s in self.stages]

    @property
    def depth(self) -> int:
        return sum(self.depths)

    @property
    def total_stride(self) -> int:
        """Downsampling factor from input to the last feature map."""
        total = self.stem_stride
        for s in self.stages:
            total *= s.stride
        return total

    def block_widths(self) -> list[int]:
        """Output width of every block, in order (the paper's per-block widths w_j)."""
        return [s.width for s in self.stages for _ in range(s.depth)]

    def replace(self, **changes: Any) -> "NetSpec":
        """A validated copy with some fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes).validate()

    # JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "block": self.block,
            "se_ratio": self.se_ratio,
            "stem_width": self.stem_width,
            "stem_stride": self.stem_stride,
            "stages": [dataclasses.asdict(s) for s in self.stages],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetSpec":
        """Inverse of to_dict; unknown keys are an error so typos do not pass silently."""
        if not isinstance(data, dict):
            raise ConfigError(f"a NetSpec dict is expected, got {type(data).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown NetSpec keys {unknown}; allowed: {sorted(allowed)}")
        if "stages" not in data:
            raise ConfigError("a NetSpec dict needs a 'stages' list")
        stage_keys = {f.name for f in dataclasses.fields(StageSpec)}
        stages = []
        for i, s in enumerate(data["stages"]):
            bad = sorted(set(s) - stage_keys)
            if bad:
                raise ConfigError(f"stage {i + 1}: unknown keys {bad}; allowed: {sorted(stage_keys)}")
            stages.append(StageSpec(**s))
        return cls(**{**data, "stages": tuple(stages)}).validate()

    @classmethod
    def from_json(cls, text: str) -> "NetSpec":
        return cls.from_dict(json.loads(text))


def make_spec(
    depths: Sequence[int],
    widths: Sequence[int],
    group_widths: Sequence[int] | int = 1,
    bottleneck_ratios: Sequence[float] | float = 1.0,
    strides: Sequence[int] | int = 2,
    block: str = "x",
    se_ratio: float = 0.0,
    stem_width: int = 32,
    stem_stride: int = 2,
    name: str = "anynet",
) -> NetSpec:
    """Build and validate a NetSpec from per-stage lists (scalars broadcast to every stage).

    Per-stage values may be any sequence (lists, tuples, ranges, 1-D numpy arrays).
    """
    depths = _per_stage(depths, "depths")
    widths = _per_stage(widths, "widths")
    n = len(depths)
    if len(widths) != n:
        raise ConfigError(f"widths has {len(widths)} entries but depths has {n}; they must match")
    columns = {}
    for label, value in (
        ("group_widths", group_widths),
        ("bottleneck_ratios", bottleneck_ratios),
        ("strides", strides),
    ):
        values = _per_stage(value, label) if _is_sequence(value) else [value] * n
        if len(values) != n:
            raise ConfigError(f"{label} has {len(values)} entries but depths has {n}; they must match")
        columns[label] = values
    stages = tuple(
        StageSpec(_integral(d), _integral(w), _integral(s), float(b), _integral(g))
        for d, w, s, b, g in zip(
            depths, widths, columns["strides"], columns["bottleneck_ratios"], columns["group_widths"]
        )
    )
    return NetSpec(
        stages, block, float(se_ratio), _integral(stem_width), _integral(stem_stride), name
    ).validate()


def _is_sequence(value: Any) -> bool:
    """A per-stage list: any non-string iterable with a length (list, tuple, range, ndarray)."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and hasattr(value, "__iter__")


def _per_stage(value: Any, label: str) -> list:
    """The values of a per-stage argument as a list; ValueError naming it if it is not a sequence."""
    if not _is_sequence(value) or getattr(value, "ndim", 1) != 1:
        raise ConfigError(f"{label} must be a list with one value per stage, got {value!r}")
    return [v.item() if hasattr(v, "item") else v for v in value]


def _integral(value: Any) -> Any:
    """numpy/float integers become int; anything else is left for validation to reject."""
    try:
        as_int = int(value)
    except (TypeError, ValueError):
        return value
    return as_int if as_int == value else value


def _check_int(value: Any, label: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{label} must be an integer >= {minimum}, got {value!r}")
