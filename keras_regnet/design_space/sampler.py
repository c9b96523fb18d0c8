"""Draw a population of unique networks from a design space under complexity constraints.

Candidates are drawn and costed in numpy batches (`fast_complexity`), so only accepted networks
ever become NetSpec objects. The same (space, seed, constraints, ...) always gives the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from keras_regnet.complexity import Complexity, InputSize, complexity
from keras_regnet.design_space.fast_complexity import batch_complexity
from keras_regnet.design_space.spaces import get_space
from keras_regnet.errors import ConfigError
from keras_regnet.spec import NetSpec

Range = Optional[Sequence[float]]
PAPER_FLOPS = (360e6, 400e6)  # the paper's 400MF regime at 224x224 with a stride-2 stem
# Bumped whenever the same (space, seed, constraints) starts giving another population; sweeps store
# it so that one begun under other sampling laws is not resumed with new samples' settings.
# 2: the paper's b (inner width w / b, was w * b) and the reference's quantized log-uniform law.
SAMPLER_VERSION = 2


@dataclass(frozen=True)
class Sample:
    """One accepted network: its position, spec, raw sampled parameters and complexity."""

    index: int
    space: str
    spec: NetSpec
    params: dict[str, Any]
    complexity: Complexity

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the sweep's samples file)."""
        cx = self.complexity
        return {"index": self.index, "space": self.space, "params": self.params,
                "spec": self.spec.to_dict(),
                "complexity": {"flops": cx.flops, "params": cx.params, "acts": cx.acts}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sample":
        """Inverse of to_dict."""
        return cls(int(data["index"]), str(data["space"]), NetSpec.from_dict(data["spec"]),
                   dict(data["params"]), Complexity(**data["complexity"]))


def scaled_flops_range(input_size: int, stem_stride: int, base: Sequence[float] = PAPER_FLOPS
                       ) -> tuple[float, float]:
    """The paper's 360-400MF regime rescaled by feature-map area to another input size / stem stride.

    Body flops scale with the area after the stem, so (224/2)^2 -> (input_size/stem_stride)^2.
    """
    ratio = (input_size / stem_stride) ** 2 / (224 / 2) ** 2
    return base[0] * ratio, base[1] * ratio


def _check_limit(label: str, rng: Range) -> Optional[tuple[float, float]]:
    """(low, high) as floats, or None; ValueError naming the argument otherwise."""
    if rng is None:
        return None
    try:
        low, high = (float(v) for v in rng)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{label} must be (low, high) with 0 <= low <= high, got {rng!r}") from err
    if not 0 <= low <= high:
        raise ConfigError(f"{label} must be (low, high) with 0 <= low <= high, got {rng!r}")
    return low, high


def _check_input_size(input_size: Any) -> None:
    """An int or (height, width) of positive integers."""
    sides = (input_size, input_size) if not isinstance(input_size, (tuple, list)) else tuple(input_size)
    if len(sides) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                              for v in sides):
        raise ConfigError(
            f"input_size must be a positive integer or (height, width) of them, got {input_size!r}"
        )


def _latency_filter(rng: Optional[tuple[float, float]], model: Any, input_size: InputSize
                    ) -> Optional[Callable[..., np.ndarray]]:
    """(flops, params, acts) -> mask of predicted latencies in range; None without a latency budget."""
    if rng is None:
        return None
    if model is None:
        raise ConfigError("latency=(lo, hi) needs latency_model=, a LatencyModel fitted at this input size")
    if model.input_size != input_size:
        raise ConfigError(f"latency model {model.key} was fitted at input size {model.input_size}, "
                          f"not at input_size={input_size}; fit one at this size")

    def within(flops: Any, params: Any, acts: Any) -> np.ndarray:
        ms = model.predict(flops, params, acts)
        return (ms >= rng[0]) & (ms <= rng[1])

    return within


def sample(
    space: Any,
    num_samples: int,
    seed: int = 0,
    *,
    flops: Range = None,
    params: Range = None,
    acts: Range = None,
    input_size: InputSize = 224,
    stem_width: int = 32,
    stem_stride: int = 2,
    classes: int = 1000,
    unique: bool = True,
    batch_size: int = 32768,
    max_candidates: Optional[int] = None,
    latency: Range = None,
    latency_model: Any = None,
) -> list[Sample]:
    """Draw `num_samples` networks whose flops / params / acts lie in the given inclusive ranges.

    `space` is a space object or name (see `spaces.SPACES`). `latency=(lo, hi)` milliseconds keeps
    networks whose latency predicted by `latency_model` (a `design_space.latency_model.LatencyModel`
    fitted at this input size) is in range. Raises ValueError when the constraints accept nothing
    within `max_candidates` draws (default 100k per requested sample + 1M).
    """
    space = get_space(space) if isinstance(space, str) else space
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
        raise ConfigError(f"num_samples must be an integer >= 0, got {num_samples!r}")
    if stem_stride not in (1, 2):
        raise ConfigError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    _check_input_size(input_size)
    limits = {k: _check_limit(k, v) for k, v in (("flops", flops), ("params", params), ("acts", acts))}
    in_latency = _latency_filter(_check_limit("latency", latency), latency_model, input_size)
    budget = max_candidates if max_candidates is not None else 100_000 * num_samples + 1_000_000
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    seen: set[tuple] = set()
    drawn = 0
    while len(out) < num_samples:
        if drawn >= budget:
            raise ConfigError(
                f"only {len(out)} of {num_samples} {space.name} networks met flops={flops} "
                f"params={params} acts={acts} latency={latency} at input_size={input_size} in {drawn} draws; "
                f"widen the ranges"
            )
        cands = space.draw(rng, batch_size)
        drawn += batch_size
        ok = cands.valid.copy()
        cx = batch_complexity(cands.stages, input_size, stem_width, stem_stride, space.se_ratio, classes,
                              block=space.block)
        for value, lim in zip(cx, limits.values()):
            if lim is not None:
                ok &= (value >= lim[0]) & (value <= lim[1])
        if in_latency is not None:
            ok &= in_latency(*cx)
        rows = np.flatnonzero(ok)
        while rows.size and len(out) < num_samples:  # build specs only for the rows still needed
            n_take = 2 * (num_samples - len(out)) + 16
            _accept(space, cands, rows[:n_take], cx, out, seen, limits, unique, input_size, stem_width,
                    stem_stride, classes, num_samples, in_latency)
            rows = rows[n_take:]
    return out


def _accept(space: Any, cands: Any, rows: np.ndarray, cx: tuple, out: list, seen: set, limits: dict,
            unique: bool, input_size: InputSize, stem_width: int, stem_stride: int, classes: int,
            num_samples: int, in_latency: Optional[Callable[..., np.ndarray]] = None) -> None:
    """Turn candidate rows into Samples (exactly costed, de-duplicated) until num_samples are in."""
    for i, item in zip(rows.tolist(), space.stage_specs(cands, rows, stem_width, stem_stride)):
        if isinstance(item, NetSpec):  # the rule disagreed with the draw's stage split: cost it exactly
            stages, exact = item.stages, complexity(item, input_size, classes=classes)
            if not all(lim is None or lim[0] <= getattr(exact, k) <= lim[1] for k, lim in limits.items()):
                continue
            if in_latency is not None and not in_latency(exact.flops, exact.params, exact.acts):
                continue
        else:
            stages, exact = item, Complexity(int(cx[0][i]), int(cx[1][i]), int(cx[2][i]))
        if unique and stages in seen:
            continue
        seen.add(stages)
        spec = NetSpec(stages, space.block, float(space.se_ratio), stem_width, stem_stride,
                       f"{space.name}_{len(out):05d}")
        out.append(Sample(len(out), space.name, spec, space.record(cands, i), exact))
        if len(out) == num_samples:
            break

