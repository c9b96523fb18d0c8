"""The paper's design spaces: AnyNetX_A..E and RegNetX/RegNetY, drawn in vectorized batches.

Each space turns a seeded numpy Generator into a `Candidates` batch: the raw sampled parameters,
the per-stage arrays of the network they describe (after the group/bottleneck compatibility rule)
and a mask of candidates that are valid before any complexity constraint. `sampler.py` filters
those on complexity and turns the survivors into NetSpecs. The RegNet rule, its inverse and the
compatibility rule are `keras_regnet.regnet`'s, the same functions `RegNetParams.to_spec` uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_regnet.design_space.fast_complexity import StageArrays
from keras_regnet.errors import ConfigError
from keras_regnet.regnet import (QUANTUM, RegNetParams, adjust_compatibility, block_stages, block_type, stage_ends,
                                 stage_widths)
from keras_regnet.spec import StageSpec

PAPER_BOTTLENECKS = (1, 2, 4)  # the paper's b: an X block's inner width is w / b
# StageSpec.bottleneck_ratio is the reference's multiplier (pycls BOT_MUL, timm bottle_ratio): 1 / b.
BOTTLENECK_RATIOS = tuple(1.0 / b for b in PAPER_BOTTLENECKS)  # (1.0, 0.5, 0.25)
GROUP_WIDTHS = (1, 2, 4, 8, 16, 32)
COMPATIBILITY = ("adjust", "reject")
SIZE_METHODS = ("paper", "exact")


@dataclass
class Candidates:
    """A batch of drawn networks: raw parameters (name -> (N,) or (N, S) array) and stage arrays."""

    params: dict[str, np.ndarray]
    stages: StageArrays
    valid: np.ndarray


def log_uniform(rng: np.random.Generator, lo: float, hi: float, q: float, shape: Any) -> np.ndarray:
    """Log-uniform draws in [lo, hi] quantized to q, the reference sampler's law (pycls sweep/random.py).

    x is log-uniform on (lo - q*, hi] with q* = min(q, lo / 2) and rounded *up* to a multiple of q, so
    each value v gets the log-uniform mass of (v - q, v] (the lowest value that of (lo - q*, lo]).
    """
    x = np.exp(rng.uniform(math.log(lo - min(q, lo / 2)), math.log(hi), size=shape))
    if q < 1:  # ceil(x * 10) / 10 rather than ceil(x / 0.1) * 0.1 keeps values like 23.4 exact decimals
        inv = round(1 / q)
        return np.clip(np.ceil(x * inv) / inv, lo, hi)
    return np.clip(np.ceil(x / q) * q, lo, hi)


def choice(rng: np.random.Generator, values: tuple, shape: Any) -> np.ndarray:
    """Uniform draws from a value set (log-uniform over a set of powers of two, pycls power2_uniform)."""
    return np.asarray(values)[rng.integers(0, len(values), size=shape)]


def _check_range(label: str, rng: tuple[float, float], lo_min: float) -> None:
    if len(rng) != 2 or not lo_min <= rng[0] <= rng[1]:
        raise ConfigError(f"{label} must be (low, high) with {lo_min} <= low <= high, got {rng!r}")


def _check_values(label: str, values: tuple) -> None:
    if not values or any(not v > 0 for v in values):
        raise ConfigError(f"{label} must be a non-empty tuple of positive numbers, got {values!r}")


def _draw_bottlenecks(rng: np.random.Generator, ratios: tuple, shape: Any) -> tuple[np.ndarray, np.ndarray]:
    """(multipliers, the paper's b = 1 / multiplier): one uniform choice from the space's ratios."""
    r = choice(rng, ratios, shape).astype(np.float64)
    return r, 1.0 / r


@dataclass(frozen=True)
class AnyNetSpace:
    """AnyNetX: 4 stages of X blocks, each with depth d_i, width w_i, bottleneck b_i, group width g_i.

    d_i and w_i are log-uniform (the reference's quantized law, see `log_uniform`), b_i and g_i
    uniform over their sets. `bottleneck_ratios` are StageSpec multipliers 1 / b: the default
    (1, 0.5, 0.25) is the paper's b in {1, 2, 4}, inner width w / b; the sampled `bs` record the
    paper's b. The refinements of the paper are flags: shared b (B), shared g (C), non-decreasing widths (D),
    non-decreasing depths (E). Constraints condition the same base distribution (draws violating
    them are rejected), so comparing two spaces isolates the constraint.
    """

    name: str = "anynetx_a"
    shared_b: bool = False
    shared_g: bool = False
    increasing_widths: bool = False
    increasing_depths: bool = False
    num_stages: int = 4
    depth_range: tuple[int, int] = (1, 16)
    width_range: tuple[int, int] = (8, 1024)
    width_quantum: int = QUANTUM
    bottleneck_ratios: tuple[float, ...] = BOTTLENECK_RATIOS
    group_widths: tuple[int, ...] = GROUP_WIDTHS
    se_ratio: float = 0.0
    compatibility: str = "adjust"

    def __post_init__(self) -> None:
        _check_range(f"{self.name} depth_range", self.depth_range, 1)
        _check_range(f"{self.name} width_range", self.width_range, 1)
        if self.width_range[0] % self.width_quantum or self.width_range[1] % self.width_quantum:
            raise ConfigError(f"width_range {self.width_range} must be multiples of {self.width_quantum}")
        _check_values(f"{self.name} bottleneck_ratios", self.bottleneck_ratios)
        _check_values(f"{self.name} group_widths", self.group_widths)
        if self.compatibility not in COMPATIBILITY:
            raise ConfigError(f"compatibility must be one of {COMPATIBILITY}, got {self.compatibility!r}")
        if self.num_stages < 1:
            raise ConfigError(f"num_stages must be >= 1, got {self.num_stages!r}")

    @property
    def block(self) -> str:
        """The block type of the space's networks (X, or Y when se_ratio > 0)."""
        return block_type(self.se_ratio)

    def draw(self, rng: np.random.Generator, n: int) -> Candidates:
        """Draw n candidate networks; `valid` marks those meeting the space's constraints."""
        shape, s = (n, self.num_stages), self.num_stages
        d = log_uniform(rng, *self.depth_range, 1, shape).astype(np.int64)
        w = log_uniform(rng, *self.width_range, self.width_quantum, shape).astype(np.int64)
        r, b = _draw_bottlenecks(rng, self.bottleneck_ratios, (n, 1) if self.shared_b else shape)
        g = choice(rng, self.group_widths, (n, 1) if self.shared_g else shape).astype(np.int64)
        r, b, g = (np.broadcast_to(x, shape).copy() for x in (r, b, g))
        valid = np.ones(n, dtype=bool)
        if self.increasing_widths and s > 1:
            valid &= np.all(np.diff(w, axis=1) >= 0, axis=1)
        if self.increasing_depths and s > 1:
            valid &= np.all(np.diff(d, axis=1) >= 0, axis=1)
        if self.compatibility == "adjust":
            w_adj, g_adj = adjust_compatibility(w, r, g)
        else:
            w_b = np.round(w * r).astype(np.int64)
            valid &= np.all((g <= w_b) & (w_b % g == 0), axis=1)
            w_adj, g_adj = w, g
        params = {"ds": d, "ws": w, "bs": b, "gs": g}
        return Candidates(params, StageArrays(d, w_adj, r, g_adj), valid)

    def stage_specs(self, c: Candidates, rows: np.ndarray, stem_width: int, stem_stride: int
                    ) -> list[Any]:
        """Per row: the StageSpec tuple of the costed stage arrays (always, for AnyNet)."""
        return _stage_tuples(c.stages, rows)

    def record(self, c: Candidates, i: int) -> dict[str, Any]:
        """The raw sampled parameters of candidate i as JSON-ready lists (bs: the paper's b_i)."""
        return {k: [v.item() for v in c.params[k][i]] for k in ("ds", "ws", "bs", "gs")}

    def size(self, method: str = "paper") -> float:
        """Number of networks in the space; 'paper' reproduces Table 1 (4! per ordering constraint)."""
        if method not in SIZE_METHODS:
            raise ConfigError(f"method must be one of {SIZE_METHODS}, got {method!r}")
        s = self.num_stages
        nd = self.depth_range[1] - self.depth_range[0] + 1
        nw = (self.width_range[1] - self.width_range[0]) // self.width_quantum + 1
        nb, ng = len(self.bottleneck_ratios), len(self.group_widths)
        shared = (nb if self.shared_b else 1) * (ng if self.shared_g else 1)
        per_stage_bg = (1 if self.shared_b else nb) * (1 if self.shared_g else ng)
        if method == "paper":
            total = float((nd * nw * per_stage_bg) ** s * shared)
            ordered = int(self.increasing_widths) + int(self.increasing_depths)
            return total / math.factorial(s) ** ordered
        count_w = math.comb(nw + s - 1, s) if self.increasing_widths else nw**s
        count_d = math.comb(nd + s - 1, s) if self.increasing_depths else nd**s
        return float(count_w * count_d * per_stage_bg**s * shared)


@dataclass(frozen=True)
class RegNetSpace:
    """RegNet: d blocks with quantized linear widths from (w0, wa, wm), shared b and g.

    Ranges follow the paper (d < 64, w0, wa < 256, 1.5 <= wm <= 3, b and g as for AnyNetX) and the
    laws of the reference's `regnet_sampler`: d uniform, w0, wa, wm log-uniform quantized to 8, 0.1
    and 0.001 (`log_uniform`), b and g uniform over their sets (`bottleneck_ratios` are multipliers
    1 / b; the record's b is the paper's). Networks whose quantized widths skip a stage or whose
    stage count is outside `num_stages` are rejected.
    """

    name: str = "regnetx"
    depth_range: tuple[int, int] = (1, 63)
    w0_range: tuple[int, int] = (8, 248)
    wa_range: tuple[float, float] = (8.0, 255.9)
    wm_range: tuple[float, float] = (1.5, 3.0)
    bottleneck_ratios: tuple[float, ...] = BOTTLENECK_RATIOS
    group_widths: tuple[int, ...] = GROUP_WIDTHS
    num_stages: tuple[int, int] = (4, 4)
    se_ratio: float = 0.0
    quantum: int = QUANTUM
    wa_quantum: float = 0.1
    wm_quantum: float = 0.001
    size_levels: int = field(default=64)

    def __post_init__(self) -> None:
        _check_range(f"{self.name} depth_range", self.depth_range, 1)
        _check_range(f"{self.name} w0_range", self.w0_range, self.quantum)
        _check_range(f"{self.name} wa_range", self.wa_range, self.wa_quantum)
        if not 1 < self.wm_range[0] <= self.wm_range[1]:
            raise ConfigError(f"wm_range must be (low, high) with 1 < low <= high, got {self.wm_range!r}")
        _check_range(f"{self.name} num_stages", self.num_stages, 1)
        _check_values(f"{self.name} bottleneck_ratios", self.bottleneck_ratios)
        _check_values(f"{self.name} group_widths", self.group_widths)

    @property
    def block(self) -> str:
        """The block type of the space's networks (X, or Y when se_ratio > 0)."""
        return block_type(self.se_ratio)

    def draw_rule(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        """n raw (d, w0, wa, wm) draws, before any rejection: d uniform, the rest log-uniform."""
        d = rng.integers(self.depth_range[0], self.depth_range[1] + 1, size=n)
        w0 = log_uniform(rng, *self.w0_range, self.quantum, n)
        wa = log_uniform(rng, *self.wa_range, self.wa_quantum, n)
        wm = log_uniform(rng, *self.wm_range, self.wm_quantum, n)
        return d, w0, wa, wm

    def draw(self, rng: np.random.Generator, n: int) -> Candidates:
        """Draw n (d, w0, wa, wm), keep those the rule maps to an allowed stage count, then b and g.

        b and g are independent of the rest, so drawing them only for the kept networks leaves the
        distribution unchanged while skipping work on the ~85% that are rejected.
        """
        d, w0, wa, wm = self.draw_rule(rng, n)
        lo, hi = self.num_stages
        # Blocks in stages <= k by the rule's inverse: all d within hi stages, not all within lo - 1.
        ends = stage_ends(w0, wa, wm, (hi - 1, lo - 2) if lo >= 2 else (hi - 1,), d)
        ok = ends[:, 0] >= d
        if lo >= 2:
            ok &= ends[:, 1] < d
        keep = np.flatnonzero(ok)
        ends = stage_ends(w0[keep], wa[keep], wm[keep], range(hi), d[keep])
        depths = np.diff(ends.astype(np.int64), axis=1, prepend=0)
        stage_w = stage_widths(w0[keep, None], wm[keep, None], np.arange(hi), self.quantum)
        used = depths > 0
        valid = np.all(used[:, :-1] | ~used[:, 1:], axis=1)  # no skipped stage: used is a prefix
        valid &= np.all(~used[:, 1:] | (np.diff(stage_w, axis=1) > 0), axis=1)  # distinct widths
        keep, depths, stage_w = keep[valid], depths[valid], stage_w[valid]
        m, s = depths.shape
        r, b = _draw_bottlenecks(rng, self.bottleneck_ratios, m)
        g = choice(rng, self.group_widths, m).astype(np.int64)
        rr, gg = np.repeat(r[:, None], s, axis=1), np.repeat(g[:, None], s, axis=1)
        w_adj, g_adj = adjust_compatibility(stage_w, rr, gg)
        params = {"d": d[keep].astype(np.int64), "w0": w0[keep].astype(np.int64), "wa": wa[keep],
                  "wm": wm[keep], "b": b, "g": g, "_ratio": r, "_stage_widths": stage_w}
        return Candidates(params, StageArrays(depths, w_adj, rr, g_adj), np.ones(m, dtype=bool))

    def regnet_params(self, c: Candidates, i: int, stem_width: int, stem_stride: int) -> RegNetParams:
        """The RegNetParams of candidate i (its bottleneck_ratio is the multiplier 1 / b)."""
        p = c.params
        return RegNetParams(int(p["d"][i]), int(p["w0"][i]), float(p["wa"][i]), float(p["wm"][i]),
                            int(p["g"][i]), float(p["_ratio"][i]), float(self.se_ratio), stem_width, stem_stride,
                            self.quantum)

    def stage_specs(self, c: Candidates, rows: np.ndarray, stem_width: int, stem_stride: int
                    ) -> list[Any]:
        """Per row: the StageSpec tuple of the costed arrays, or a NetSpec when they differ from the rule.

        The per-block stages and widths are recomputed by the rule (`block_stages`, `stage_widths`)
        for these few rows; where the draw's split by `stage_ends` agrees (always, up to float ties)
        the costed stage arrays are the network; otherwise the row's NetSpec comes from
        `RegNetParams.to_spec` and must be costed again.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return []
        p = c.params
        w0, wa, wm, d = p["w0"][rows], p["wa"][rows], p["wm"][rows], p["d"][rows]
        j = np.arange(int(d.max()), dtype=np.float64)
        k = block_stages(w0[:, None], wa[:, None], wm[:, None], j[None, :])
        in_net = j[None, :] < d[:, None]
        depths = c.stages.depths[rows]
        ok = np.all([np.sum(in_net & (k == s), axis=1) == depths[:, s] for s in range(depths.shape[1])],
                    axis=0)
        block_w = stage_widths(w0[:, None], wm[:, None], k, self.quantum)
        k_idx = np.clip(k, 0, depths.shape[1] - 1).astype(np.int64)
        stage_w = np.take_along_axis(p["_stage_widths"][rows], k_idx, axis=1)
        ok &= np.all(~in_net | (block_w == stage_w), axis=1)
        tuples = _stage_tuples(c.stages, rows)
        return [t if ok[r] else self.regnet_params(c, int(i), stem_width, stem_stride).to_spec()
                for r, (i, t) in enumerate(zip(rows, tuples))]

    def record(self, c: Candidates, i: int) -> dict[str, Any]:
        """The sampled (d, w0, wa, wm, b, g) of candidate i (b: the paper's, inner width w / b)."""
        return {k: c.params[k][i].item() for k in ("d", "w0", "wa", "wm", "b", "g")}

    def size(self, method: str = "paper") -> float:
        """'paper': each of d, w0, wa, wm quantized to 64 levels (Table 1: ~64^4 * 6 * 3 = 3.0e8);
        'exact': the grid this sampler draws from (before rejecting stage-skipping networks)."""
        if method not in SIZE_METHODS:
            raise ConfigError(f"method must be one of {SIZE_METHODS}, got {method!r}")
        bg = len(self.bottleneck_ratios) * len(self.group_widths)
        if method == "paper":
            return float(self.size_levels**4 * bg)
        nd = self.depth_range[1] - self.depth_range[0] + 1
        nw0 = (self.w0_range[1] - self.w0_range[0]) // self.quantum + 1
        nwa = int(round((self.wa_range[1] - self.wa_range[0]) / self.wa_quantum)) + 1
        nwm = int(round((self.wm_range[1] - self.wm_range[0]) / self.wm_quantum)) + 1
        return float(nd * nw0 * nwa * nwm * bg)


def _stage_tuples(st: StageArrays, rows: np.ndarray) -> list[tuple[StageSpec, ...]]:
    """StageSpecs of the given rows (depth-0 stages dropped); compatible by construction."""
    cols = [st.depths[rows].tolist(), st.widths[rows].tolist(), st.stride_array()[rows].tolist(),
            st.bottleneck_ratios[rows].tolist(), st.group_widths[rows].tolist()]
    return [tuple(StageSpec(d, w, s, float(b), g) for d, w, s, b, g in zip(*row) if d > 0) for row in zip(*cols)]


def _anynet(letter: str, **kw: Any) -> AnyNetSpace:
    return AnyNetSpace(name=f"anynetx_{letter}", **kw)


SPACES: dict[str, Any] = {
    "anynetx_a": _anynet("a"),
    "anynetx_b": _anynet("b", shared_b=True),
    "anynetx_c": _anynet("c", shared_b=True, shared_g=True),
    "anynetx_d": _anynet("d", shared_b=True, shared_g=True, increasing_widths=True),
    "anynetx_e": _anynet("e", shared_b=True, shared_g=True, increasing_widths=True, increasing_depths=True),
    "regnetx": RegNetSpace(),
    "regnety": RegNetSpace(name="regnety", se_ratio=0.25),
    "regnetx_constrained": RegNetSpace(
        name="regnetx_constrained", depth_range=(1, 40), wm_range=(2.0, 3.0), bottleneck_ratios=(1.0,),
    ),
    "regnety_constrained": RegNetSpace(
        name="regnety_constrained", depth_range=(1, 40), wm_range=(2.0, 3.0), bottleneck_ratios=(1.0,),
        se_ratio=0.25,
    ),
}


def get_space(name: str) -> Any:
    """A design space by name (case-insensitive; 'AnyNetX_E', 'RegNetX', 'regnetx_constrained')."""
    key = str(name).lower().replace("-", "_")
    if key not in SPACES:
        raise ConfigError(f"unknown design space {name!r}; choose one of {sorted(SPACES)}")
    return SPACES[key]
