"""Analytic complexity of a NetSpec: flops (multiply-adds), params and activations.

Counted as the reference (pycls) counts them: convs and linears contribute flops, weights (+ bias)
and output elements; BN contributes 2 params per channel; pooling and elementwise ops are free.
`layer_table` walks the spec layer by layer under the same names the Keras builder gives its
layers, so tests can hold the built model to the table layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Union

from keras_regnet.spec import NetSpec, StageSpec, bottleneck_width


@dataclass(frozen=True)
class LayerCost:
    """One weighted layer of the network and what it costs."""

    name: str
    kind: str  # "conv", "bn" or "dense"
    channels_in: int
    channels_out: int
    height: int  # output spatial size
    width: int
    flops: int
    params: int
    acts: int


@dataclass(frozen=True)
class Complexity:
    """Totals over all layers: multiply-adds, parameters, activations."""

    flops: int
    params: int
    acts: int

    def __str__(self) -> str:
        return f"flops={self.flops / 1e6:.1f}M params={self.params / 1e6:.2f}M acts={self.acts / 1e6:.2f}M"


InputSize = Union[int, tuple[int, int]]


class _Walker:
    """Tracks the spatial size while layers are emitted in build order."""

    def __init__(self, height: int, width: int) -> None:
        self.h, self.w = height, width

    def conv(self, name: str, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
             bias: bool = False) -> LayerCost:
        pad = (k - 1) // 2
        self.h = (self.h + 2 * pad - k) // stride + 1
        self.w = (self.w + 2 * pad - k) // stride + 1
        hw = self.h * self.w
        weights = k * k * c_in * c_out // groups + (c_out if bias else 0)
        flops = k * k * c_in * c_out * hw // groups + (c_out * hw if bias else 0)
        return LayerCost(name, "conv", c_in, c_out, self.h, self.w, flops, weights, c_out * hw)

    def bn(self, name: str, c: int) -> LayerCost:
        return LayerCost(name, "bn", c, c, self.h, self.w, 0, 2 * c, 0)

    def dense(self, name: str, c_in: int, c_out: int) -> LayerCost:
        return LayerCost(name, "dense", c_in, c_out, 1, 1, c_in * c_out + c_out, c_in * c_out + c_out, c_out)


def layer_table(spec: NetSpec, input_size: InputSize = 224, include_top: bool = True,
                classes: int = 1000) -> list[LayerCost]:
    """Every conv, BN and dense layer of the network in build order, with Keras layer names."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    walker = _Walker(int(h), int(w))
    rows = [
        walker.conv("stem_conv", 3, spec.stem_width, 3, spec.stem_stride),
        walker.bn("stem_bn", spec.stem_width),
    ]
    c_in = spec.stem_width
    for s, stage in enumerate(spec.stages, start=1):
        for b in range(1, stage.depth + 1):
            stride = stage.stride if b == 1 else 1
            rows.extend(_block_layers(walker, spec, stage, f"s{s}_b{b}", c_in, stride))
            c_in = stage.width
    if include_top:
        rows.append(walker.dense("predictions", c_in, classes))
    return rows


def _block_layers(walker: _Walker, spec: NetSpec, stage: StageSpec, prefix: str, c_in: int,
                  stride: int) -> Iterator[LayerCost]:
    """The layers of one block; the projection shortcut is walked first at the block input size."""
    c_out = stage.width
    if spec.block != "v" and (c_in != c_out or stride != 1):
        h, w = walker.h, walker.w
        yield walker.conv(f"{prefix}_proj_conv", c_in, c_out, 1, stride)
        yield walker.bn(f"{prefix}_proj_bn", c_out)
        walker.h, walker.w = h, w
    if spec.block in ("v", "r"):
        yield walker.conv(f"{prefix}_conv_a", c_in, c_out, 3, stride)
        yield walker.bn(f"{prefix}_bn_a", c_out)
        yield walker.conv(f"{prefix}_conv_b", c_out, c_out, 3)
        yield walker.bn(f"{prefix}_bn_b", c_out)
        return
    w_b = bottleneck_width(c_out, stage.bottleneck_ratio)
    yield walker.conv(f"{prefix}_conv_a", c_in, w_b, 1)
    yield walker.bn(f"{prefix}_bn_a", w_b)
    yield walker.conv(f"{prefix}_conv_b", w_b, w_b, 3, stride, groups=w_b // stage.group_width)
    yield walker.bn(f"{prefix}_bn_b", w_b)
    if spec.block == "y":
        w_se = se_width(c_in, spec.se_ratio)
        h, w = walker.h, walker.w
        walker.h = walker.w = 1
        yield walker.conv(f"{prefix}_se_reduce", w_b, w_se, 1, bias=True)
        yield walker.conv(f"{prefix}_se_expand", w_se, w_b, 1, bias=True)
        walker.h, walker.w = h, w
    yield walker.conv(f"{prefix}_conv_c", w_b, c_out, 1)
    yield walker.bn(f"{prefix}_bn_c", c_out)


def se_width(block_input_width: int, se_ratio: float) -> int:
    """Squeeze-excitation width: round(se_ratio * block *input* width), as the reference."""
    return max(1, int(round(block_input_width * se_ratio)))


def complexity(spec: NetSpec | str, input_size: InputSize = 224, include_top: bool = True,
               classes: int = 1000) -> Complexity:
    """The reference's flops / params / acts for a spec (or zoo model name) and input size.

    Sums the same walk as `layer_table`, but walks only the first two blocks of each stage: blocks
    after the first are identical, so the second is counted depth - 1 times.
    """
    if isinstance(spec, str):
        from keras_regnet.zoo import get_spec

        spec = get_spec(spec)
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    walker = _Walker(int(h), int(w))
    totals = [0, 0, 0]

    def add(rows: Iterable[LayerCost], times: int = 1) -> None:
        for row in rows:
            totals[0] += row.flops * times
            totals[1] += row.params * times
            totals[2] += row.acts * times

    add([walker.conv("stem_conv", 3, spec.stem_width, 3, spec.stem_stride)])
    add([walker.bn("stem_bn", spec.stem_width)])
    c_in = spec.stem_width
    for stage in spec.stages:
        add(_block_layers(walker, spec, stage, "", c_in, stage.stride))
        if stage.depth > 1:
            add(_block_layers(walker, spec, stage, "", stage.width, 1), stage.depth - 1)
        c_in = stage.width
    if include_top:
        add([walker.dense("predictions", c_in, classes)])
    return Complexity(*totals)
