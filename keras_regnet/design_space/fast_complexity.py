"""Exact flops / params / acts of a whole batch of networks at once (numpy, int64), from walk's records.

Samplers reject most candidates on complexity, so costing them one NetSpec at a time (tens of
microseconds each in `keras_regnet.complexity.complexity`) would dominate sampling. Here the one
walk (`keras_regnet.layer_records`) is followed with numpy arrays for the batch's widths, strides, bottleneck
ratios and group widths, and its records are costed by `complexity.record_costs`: every block type
and stem option of the walk is costed by the code `complexity()` uses, and a test holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from keras_regnet import layer_records
from keras_regnet.complexity import InputSize, input_sizes, record_costs
from keras_regnet.regnet import block_type
from keras_regnet.spec import NetSpec, StageSpec

PAPER_STRIDE = 2  # the design spaces' stride in the first block of every stage


@dataclass(frozen=True)
class StageArrays:
    """Per-stage parameters of N networks with up to S stages; depth 0 marks an absent stage."""

    depths: np.ndarray  # (N, S) int
    widths: np.ndarray  # (N, S) int, already compatible with the group widths
    bottleneck_ratios: np.ndarray  # (N, S) float
    group_widths: np.ndarray  # (N, S) int
    strides: Optional[np.ndarray] = None  # (N, S) int; None: PAPER_STRIDE in every stage

    @classmethod
    def from_specs(cls, specs: list[NetSpec]) -> "StageArrays":
        """Stack specs (padding short ones with depth-0 stages) for batch costing."""
        s = max(len(spec.stages) for spec in specs)
        arr = np.zeros((5, len(specs), s))
        arr[2:] = np.array([1.0, 1, PAPER_STRIDE])[:, None, None]
        for i, spec in enumerate(specs):
            for j, st in enumerate(spec.stages):
                arr[:, i, j] = (st.depth, st.width, st.bottleneck_ratio, st.group_width, st.stride)
        ints = arr.astype(np.int64)
        return cls(ints[0], ints[1], arr[2], ints[3], ints[4])

    def stride_array(self) -> np.ndarray:
        """(N, S) strides of the first block of each stage."""
        if self.strides is None:
            return np.full(self.depths.shape, PAPER_STRIDE, dtype=np.int64)
        return np.asarray(self.strides, dtype=np.int64)


def _compact(values: np.ndarray) -> Any:
    """A Python int when every network shares the value (cheaper arithmetic), else the array."""
    return int(values[0]) if values.size and np.all(values == values[0]) else values


def _walk_costs(records: list[layer_records.LayerRecord], sizes: dict) -> tuple[Any, Any, Any, tuple]:
    """Summed (flops, params, acts) of the records and the output (height, width) of the last one."""
    flops = params = acts = 0
    for _, _, _, f, p, a in record_costs(records, sizes):
        flops, params, acts = flops + f, params + p, acts + a
    return flops, params, acts, sizes[records[-1].name]


def _block_costs(net: NetSpec, stage: StageSpec, c_in: Any, stride: Any, size: tuple, n: int) -> tuple:
    """Costs of one block for n networks, walking each shortcut choice that some network makes."""
    project = np.broadcast_to(layer_records.needs_projection(c_in, stage.width, stride), (n,))
    out = None
    for choice in (True, False):
        if (project if choice else ~project).any():
            records = list(layer_records.block(net, stage, "b", "in", c_in, stride, project=choice))
            costs = _walk_costs(records, {"in": size})
            out = costs if out is None else _select(project, out, costs)
    return out


def _select(mask: np.ndarray, a: tuple, b: tuple) -> tuple:
    """Elementwise a where mask else b, over (flops, params, acts, (height, width))."""
    return (*(np.where(mask, x, y) for x, y in zip(a[:3], b[:3])),
            tuple(np.where(mask, x, y) for x, y in zip(a[3], b[3])))


def _stage_costs(net: NetSpec, stages: StageArrays, k: int, c_in: np.ndarray, size: tuple) -> tuple:
    """Stage k's (flops, params, acts) per network (0 where absent), its output size and width."""
    n = len(c_in)
    depth = np.asarray(stages.depths[:, k], dtype=np.int64)
    present = depth > 0  # absent stages get harmless placeholder widths, then cost nothing
    stage = StageSpec(0, _compact(np.where(present, stages.widths[:, k], 1).astype(np.int64)), 1,
                      _compact(np.where(present, stages.bottleneck_ratios[:, k], 1.0)),
                      _compact(np.where(present, stages.group_widths[:, k], 1).astype(np.int64)))
    stride = _compact(np.where(present, stages.stride_array()[:, k], 1))
    first = _block_costs(net, stage, _compact(c_in), stride, size, n)
    rest = _block_costs(net, stage, stage.width, 1, first[3], n)  # counted depth - 1 times
    times = np.maximum(depth - 1, 0)
    costs = [np.where(present, first[i] + times * rest[i], 0) for i in range(3)]
    size = tuple(np.where(present, np.broadcast_to(x, (n,)), y) for x, y in zip(first[3], size))
    return costs, size, np.where(present, stage.width, c_in)


def _net(block: Optional[str], se_ratio: float, stem_width: int, stem_stride: int) -> NetSpec:
    """The batch's shared NetSpec fields, validated as NetSpec validates them (block type, SE, stem)."""
    block = block if block is not None else block_type(se_ratio)
    probe = NetSpec((StageSpec(1, 8),), block, float(se_ratio), stem_width, stem_stride, "batch")
    return probe.validate()


def batch_complexity(
    stages: StageArrays,
    input_size: InputSize = 224,
    stem_width: int = 32,
    stem_stride: int = 2,
    se_ratio: float = 0.0,
    classes: int = 1000,
    include_top: bool = True,
    block: Optional[str] = None,
    channels: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flops, params, acts) int64 arrays for N networks of one block type (None: Y if se_ratio > 0, else X).

    Equal to `complexity()` of each network: the same walk, costed stage by stage for the batch
    (the first block of a stage, then its second counted depth - 1 times). ConfigError for a block
    type, SE ratio or stem that NetSpec does not allow; rows whose group width does not divide the
    bottleneck width (candidates a space rejects) get meaningless costs.
    """
    net = _net(block, se_ratio, stem_width, stem_stride)
    depths = np.asarray(stages.depths, dtype=np.int64)
    n, s_count = depths.shape
    stem = list(layer_records.stem(net, layer_records.INPUT, channels))
    flops, params, acts, (h, w) = _walk_costs(stem, input_sizes(input_size))
    totals = [np.full(n, flops, dtype=np.int64), np.full(n, params, dtype=np.int64),
              np.full(n, acts, dtype=np.int64)]
    size = (np.full(n, h, dtype=np.int64), np.full(n, w, dtype=np.int64))
    c_in = np.full(n, stem[-1].channels_out, dtype=np.int64)
    if n == 0:
        return tuple(totals)
    with np.errstate(divide="ignore"):  # rows whose group width does not divide: rejected, cost unused
        for k in range(s_count):
            costs, size, c_in = _stage_costs(net, stages, k, c_in, size)
            for i in range(3):
                totals[i] += costs[i]
    if include_top:
        head = _walk_costs(list(layer_records.head("in", c_in, classes)), {"in": size})
        for i in range(3):
            totals[i] += head[i]
    return tuple(totals)
