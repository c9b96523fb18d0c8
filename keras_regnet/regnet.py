"""The RegNet parametrization (quantized linear widths) and its inverse, the quantized linear fit.

Pure Python + numpy. A RegNet is six numbers (d, w0, wa, wm, b, g); `RegNetParams.to_spec()` turns
them into a NetSpec by the paper's rule, and `fit_quantized_linear` recovers (w0, wa, wm) and the fit
error e_fit from any per-block width list (the paper's Fig. 8).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from keras_regnet.errors import ConfigError
from keras_regnet.spec import NetSpec, StageSpec

QUANTUM = 8
GROUP_ROUNDINGS = ("pycls", "torchvision")
TORCHVISION_ROUND_LIMIT = 0.9  # torchvision's _make_divisible: never round down by more than 10%


def quantized_block_widths(depth: int, w0: int, wa: float, wm: float, q: int = QUANTUM) -> list[int]:
    """Per-block widths w_j = q * round(w0 * wm**s_j / q), s_j = round(log(u_j / w0) / log(wm)).

    u_j = w0 + wa * j are the continuous widths; numpy's round is round-half-to-even, as in the
    reference.
    """
    _validate_rule(depth, w0, wa, wm, q)
    return [int(x) for x in stage_widths(w0, wm, block_stages(w0, wa, wm, np.arange(depth)), q)]


def block_stages(w0: Any, wa: Any, wm: Any, j: Any) -> Any:
    """The rule's stage of block j: s_j = round(log(u_j / w0) / log(wm)), u_j = w0 + wa * j.

    Numbers or numpy arrays broadcast together (one row per network of a batch); log(wm) is taken
    with `math.log`, one value at a time, so a batch computes what one network does.
    """
    u = w0 + wa * j
    return np.round(np.log(u / w0) / _math_log(wm))


def stage_widths(w0: Any, wm: Any, stage: Any, q: int = QUANTUM) -> Any:
    """The rule's width of stage s: q * round(w0 * wm**s / q) (numbers or broadcasting numpy arrays)."""
    return np.round(w0 * np.power(wm, stage) / q) * q


def stage_ends(w0: np.ndarray, wa: np.ndarray, wm: np.ndarray, stages: Sequence[int], depth: np.ndarray
               ) -> np.ndarray:
    """(N, len(stages)) blocks in stages <= k, k in `stages`, of N networks: `block_stages` inverted.

    Block j is in a stage <= k iff j < w0 (wm^(k + 1/2) - 1) / wa, capped at the depth; one value per
    stage instead of one logarithm per block, for samplers (which check accepted rows by the rule).
    """
    scale, root, power = w0 / wa, np.sqrt(wm), np.ones_like(wm)
    ends = {}
    for k in range(max(stages) + 1):
        if k in stages:
            ends[k] = np.minimum(np.ceil(scale * (root * power - 1.0)), depth)
        power = power * wm  # wm^k by multiplication: cheaper than np.power
    return np.stack([ends[k] for k in stages], axis=-1)


def _math_log(x: Any) -> Any:
    """math.log of a number, or of each entry of an array."""
    if isinstance(x, np.ndarray):
        return np.array([math.log(v) for v in x.ravel().tolist()]).reshape(x.shape)
    return math.log(x)


def stages_from_block_widths(block_widths: Sequence[int]) -> tuple[list[int], list[int]]:
    """Group consecutive equal widths into stages: returns (stage widths, stage depths)."""
    widths: list[int] = []
    depths: list[int] = []
    for w in block_widths:
        if widths and widths[-1] == w:
            depths[-1] += 1
        else:
            widths.append(int(w))
            depths.append(1)
    return widths, depths


def adjust_block_compatibility(
    widths: Sequence[int], bottleneck_ratios: Sequence[float], group_widths: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Make each stage's group width divide its bottleneck width, as the reference does.

    The group width is clamped to the bottleneck width (so RegNetX-8.0GF's first stage, 80 wide with
    g=120, gets one group of 80), and the bottleneck width is rounded to a multiple of the group
    width (and of b when b > 1 so that width = bottleneck / b stays integral). `bottleneck_ratios`
    are multipliers (inner width = width * b, pycls's BOT_MUL), the inverse of the paper's b.
    Returns (adjusted widths, adjusted group widths).
    """
    if not len(widths) == len(bottleneck_ratios) == len(group_widths):
        raise ConfigError(
            f"widths, bottleneck_ratios and group_widths must have equal lengths, got "
            f"{len(widths)}, {len(bottleneck_ratios)}, {len(group_widths)}"
        )
    out_w, out_g = adjust_compatibility(np.asarray(widths, dtype=np.float64),
                                        np.asarray(bottleneck_ratios, dtype=np.float64),
                                        np.asarray(group_widths, dtype=np.int64))
    return out_w.tolist(), out_g.tolist()


def adjust_compatibility(widths: np.ndarray, ratios: np.ndarray, groups: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """`adjust_block_compatibility` elementwise on numpy arrays (int64 widths and group widths).

    v = max(1, floor(w * r)); g = min(g, v); m = lcm(g, floor(r)) if r > 1 else g;
    v = max(m, round(v / m) * m); w = floor(v / r). `ratios` are bottleneck multipliers.
    """
    v = np.maximum(1, np.floor(widths * ratios)).astype(np.int64)
    g = np.minimum(groups, v).astype(np.int64)
    b_int = np.floor(ratios).astype(np.int64)
    m = np.where(ratios > 1, np.lcm(g, np.maximum(b_int, 1)), g)
    v = np.maximum(m, (np.round(v / m) * m).astype(np.int64))
    return np.floor(v / ratios).astype(np.int64), g


def torchvision_group_rounding(widths: Sequence[int], group_widths: Sequence[int]) -> tuple[list[int], list[int]]:
    """torchvision's compatibility rule (bottleneck ratio 1), timm's `*_tv` models: g = min(g, w), then
    w rounded half up to a multiple of g, plus one g more when that lost over 10% of w. It differs from
    pycls's round-half-even (RegNetX-400MF's last stage: 392 -> 400, not 384; RegNetY-8.0GF's first:
    192 -> 224, not 168)."""
    out_w, out_g = [], []
    for w, g in zip(widths, group_widths):
        g = min(int(g), int(w))
        v = int(w + g / 2) // g * g
        if v < TORCHVISION_ROUND_LIMIT * w:
            v += g
        out_w.append(max(v, g))
        out_g.append(g)
    return out_w, out_g


@dataclass(frozen=True)
class RegNetParams:
    """The RegNet design-space parameters: depth d, w0, wa, wm, group width g, bottleneck ratio.

    `bottleneck_ratio` is the multiplier of StageSpec (pycls's BOT_MUL): the paper's b is 1 / it.
    """

    depth: int
    w0: int
    wa: float
    wm: float
    group_width: int
    bottleneck_ratio: float = 1.0
    se_ratio: float = 0.0
    stem_width: int = 32
    stem_stride: int = 2
    quantum: int = QUANTUM
    group_rounding: str = "pycls"  # or "torchvision": its rounding of widths to the group width

    def validate(self) -> "RegNetParams":
        _validate_rule(self.depth, self.w0, self.wa, self.wm, self.quantum)
        if self.group_rounding not in GROUP_ROUNDINGS:
            raise ConfigError(f"group_rounding={self.group_rounding!r} is not one of {', '.join(GROUP_ROUNDINGS)}")
        if self.group_rounding == "torchvision" and self.bottleneck_ratio != 1.0:
            raise ConfigError(f"group_rounding='torchvision' needs bottleneck_ratio=1.0, got {self.bottleneck_ratio!r}")
        g = self.group_width
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1:
            raise ConfigError(f"group_width must be a positive integer, got {g!r}")
        if not (_is_real(self.bottleneck_ratio) and math.isfinite(self.bottleneck_ratio)
                and self.bottleneck_ratio > 0):
            raise ConfigError(f"bottleneck_ratio must be a finite number > 0, got {self.bottleneck_ratio!r}")
        if not (_is_real(self.se_ratio) and 0 <= self.se_ratio <= 1):
            raise ConfigError(f"se_ratio must be in [0, 1], got {self.se_ratio!r}")
        return self

    def block_widths(self) -> list[int]:
        """Quantized per-block widths before the group/bottleneck adjustment."""
        return quantized_block_widths(self.depth, self.w0, self.wa, self.wm, self.quantum)

    def num_stages(self) -> int:
        return len(stages_from_block_widths(self.block_widths())[0])

    def to_spec(self, name: str = "regnet") -> NetSpec:
        """Apply the rule: stages = runs of equal widths, then the compatibility adjustment."""
        self.validate()
        widths, depths = stages_from_block_widths(self.block_widths())
        n = len(widths)
        if self.group_rounding == "torchvision":
            widths, groups = torchvision_group_rounding(widths, [self.group_width] * n)
        else:
            widths, groups = adjust_block_compatibility(
                widths, [self.bottleneck_ratio] * n, [self.group_width] * n
            )
        stages = tuple(
            StageSpec(int(d), int(w), 2, float(self.bottleneck_ratio), int(g))
            for d, w, g in zip(depths, widths, groups)
        )
        return NetSpec(
            stages, block_type(self.se_ratio), float(self.se_ratio), self.stem_width, self.stem_stride, name
        ).validate()


def block_type(se_ratio: float) -> str:
    """The block of a RegNet: Y (X + squeeze-excitation) when se_ratio > 0, else X."""
    return "y" if se_ratio > 0 else "x"


def _validate_rule(depth: int, w0: int, wa: float, wm: float, q: int) -> None:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ConfigError(f"depth must be an integer >= 1, got {depth!r}")
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 1:
        raise ConfigError(f"quantum must be a positive integer, got {q!r}")
    if isinstance(w0, bool) or not isinstance(w0, (int, np.integer)) or w0 <= 0 or w0 % q:
        raise ConfigError(f"w0 must be a positive multiple of {q}, got {w0!r}")
    if not (_is_real(wa) and math.isfinite(wa) and wa >= 0):
        raise ConfigError(f"wa must be a finite number >= 0, got {wa!r}")
    if not (_is_real(wm) and math.isfinite(wm) and wm > 1):
        raise ConfigError(f"wm must be a finite number > 1, got {wm!r}")


def _is_real(value: object) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


# The quantized linear fit (inverse of the rule) ----------------------------------------------


@dataclass(frozen=True)
class QuantizedLinearFit:
    """Best (w0, wa, wm) for a width list, and e_fit: mean |log(predicted / observed)| per block."""

    w0: int
    wa: float
    wm: float
    e_fit: float
    predicted: tuple[int, ...]


def fit_quantized_linear(
    block_widths: Sequence[int],
    q: int = QUANTUM,
    wm_range: tuple[float, float] = (1.05, 4.0),
    wa_max: float | None = None,
) -> QuantizedLinearFit:
    """Fit the quantized linear rule to per-block widths; e_fit = mean |log(predicted / observed)|.

    The depth is the list's length. w0 is searched over multiples of q next to the first width (the
    rule always gives block 0 width w0); wm over a log grid plus the values (W / w0)**(1/k) that
    reproduce each observed width W at stage k; and for each (w0, wm), wa over one point between
    every pair of consecutive breakpoints where a block changes stage, so no wa cell is missed.
    e_fit is 0 exactly when the rule reproduces every width.
    """
    observed = np.asarray(block_widths, dtype=np.float64)
    if observed.ndim != 1 or observed.size == 0 or np.any(observed <= 0):
        raise ConfigError(f"block_widths must be a non-empty list of positive widths, got {block_widths!r}")
    log_obs = np.log(observed)
    j = np.arange(observed.size, dtype=np.float64)
    wa_hi = wa_max if wa_max is not None else max(float(observed.max()), 2.0 * q)
    base = max(q, int(round(observed[0] / q)) * q)
    best: tuple[float, int, float, float] = (math.inf, base, 0.0, 2.0)

    def search(w0: int, wms: np.ndarray) -> tuple[float, int, float, float]:
        nonlocal best
        for wm in wms:
            was = _candidate_was(w0, float(wm), observed.size, wa_hi)
            pred = np.maximum(stage_widths(w0, wm, block_stages(w0, was[:, None], wm, j), q), q)
            err = np.mean(np.abs(np.log(pred) - log_obs), axis=1)
            i = int(np.argmin(err))
            if err[i] < best[0]:
                best = (float(err[i]), w0, float(was[i]), float(wm))
                if best[0] == 0.0:
                    break
        return best

    # A true RegNet is found at once: its stage widths pin wm to a small interval.
    if search(base, _stage_consistent_wms(base, observed, q, wm_range))[0] > 0.0:
        grid = np.geomspace(wm_range[0], wm_range[1], 80)
        for w0 in (base, base - q, base + q):
            if w0 > 0 and search(w0, np.concatenate([_exact_wms(w0, observed, wm_range), grid]))[0] == 0.0:
                break
    err, w0, wa, wm = best
    predicted = tuple(quantized_block_widths(len(observed), int(w0), float(wa), float(wm), q))
    return QuantizedLinearFit(int(w0), float(wa), float(wm), float(err), predicted)


def _stage_consistent_wms(
    w0: int, observed: np.ndarray, q: int, wm_range: tuple[float, float]
) -> np.ndarray:
    """wm values for which q*round(w0 * wm**k / q) equals the k-th distinct observed width, all k."""
    distinct = [float(w) for w, _ in itertools.groupby(observed)]
    if len(distinct) < 2 or distinct[0] != w0:
        return np.array([])
    lo, hi = wm_range
    for k, w in enumerate(distinct[1:], start=1):
        lo = max(lo, ((w - q / 2) / w0) ** (1.0 / k))
        hi = min(hi, ((w + q / 2) / w0) ** (1.0 / k))
    return np.linspace(lo, hi, 11)[1:-1] if lo < hi else np.array([])


def _exact_wms(w0: int, observed: np.ndarray, wm_range: tuple[float, float]) -> np.ndarray:
    """Every wm that maps w0 exactly onto an observed width at some stage k < 8."""
    wms = np.array([(w / w0) ** (1.0 / k) for w in np.unique(observed) if w > w0 for k in range(1, 8)])
    return wms[(wms >= wm_range[0]) & (wms <= wm_range[1])] if wms.size else wms


def _candidate_was(w0: int, wm: float, depth: int, wa_hi: float) -> np.ndarray:
    """One wa between each pair of breakpoints where some block j moves to the next stage."""
    if depth < 2:
        return np.array([0.0])
    k_max = math.log1p(wa_hi * (depth - 1) / w0) / math.log(wm)
    ks = np.arange(0, int(k_max) + 1) + 0.5
    jj = np.arange(1, depth)
    bps = (w0 * (np.power(wm, ks)[None, :] - 1.0) / jj[:, None]).ravel()
    bps = np.unique(np.concatenate([[0.0, wa_hi], bps[bps < wa_hi]]))
    return np.concatenate([(bps[:-1] + bps[1:]) / 2, [0.0]])
