"""Analytic complexity of a NetSpec: flops (multiply-adds), params and activations.

Counted as the reference (pycls) counts them: convs and linears contribute flops, weights (+ bias)
and output elements; BN contributes 2 params per channel; pooling and elementwise ops are free.
`layer_table` costs the records of `keras_regnet.layer_records`, the walk the Keras builders follow, so its
rows carry the built layers' names and tests can hold the built model to the table layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Union

from keras_regnet import layer_records
from keras_regnet.layer_records import LayerRecord, se_width  # noqa: F401  (se_width: re-exported)
from keras_regnet.resolve import resolve_spec
from keras_regnet.spec import NetSpec


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


def record_costs(records: Iterable[LayerRecord], sizes: dict[str, tuple[Any, Any]]
                 ) -> Iterator[tuple[LayerRecord, Any, Any, Any, Any, Any]]:
    """(record, height, width, flops, params, acts) of every conv, BN and dense record.

    `sizes` maps record names to their output (height, width) and grows as records are walked.
    Sizes, strides and channels may be numpy arrays: then the costs are arrays over the batch.
    """
    for r in records:
        h, w = sizes[r.inputs[0]]
        kind = r.kind
        if kind == "conv":
            k, pad = r.kernel, (r.kernel - 1) // 2
            span = r.dilation * (k - 1) + 1  # a dilated kernel's extent, padded r.dilation * pad per side
            h = (h + 2 * r.dilation * pad - span) // r.stride + 1
            w = (w + 2 * r.dilation * pad - span) // r.stride + 1
            hw = h * w
            weights = k * k * r.channels_in * r.channels_out // r.groups + (r.channels_out if r.bias else 0)
            yield r, h, w, weights * hw, weights, r.channels_out * hw
        elif kind == "bn":
            yield r, h, w, 0, 2 * r.channels_out, 0
        elif kind == "dense":
            h = w = 1
            n = r.channels_in * r.channels_out + r.channels_out
            yield r, 1, 1, n, n, r.channels_out
        elif kind == "pool":
            h = w = 1
        sizes[r.name] = (h, w)


def input_sizes(input_size: InputSize) -> dict[str, tuple[int, int]]:
    """{layer_records.INPUT: (height, width)} for an int or (height, width) input size."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    return {layer_records.INPUT: (int(h), int(w))}


def layer_table(spec: NetSpec, input_size: InputSize = 224, include_top: bool = True,
                classes: int = 1000, channels: int = 3, output_stride: int | None = None) -> list[LayerCost]:
    """Every conv, BN and dense layer of the network in build order, with Keras layer names."""
    records = layer_records.network(spec, include_top, classes, channels, output_stride)
    return [LayerCost(r.name, r.kind, r.channels_in, r.channels_out, *cost)
            for r, *cost in record_costs(records, input_sizes(input_size))]


def complexity(spec: NetSpec | str | dict, input_size: InputSize = 224, include_top: bool = True,
               classes: int = 1000, channels: int = 3, output_stride: int | None = None) -> Complexity:
    """The reference's flops / params / acts for a spec (or any model name `resolve_model` takes), input size and channels.

    Sums the same walk as `layer_table`, but walks only the first two blocks of each stage: blocks
    after the first are identical, so the second is counted depth - 1 times. With `output_stride`
    (8, 16, 32) it counts the dilated network `build(..., output_stride=...)` makes.
    """
    if not isinstance(spec, NetSpec):
        spec = resolve_spec(spec, label="spec")
    sizes = input_sizes(input_size)
    totals = [0, 0, 0]

    def add(records: Iterable[LayerRecord], times: int = 1) -> str:
        """Add the records' costs `times` over; return the name of the last record (the output)."""
        records = list(records)
        for _, _, _, flops, params, acts in record_costs(records, sizes):
            totals[0] += flops * times
            totals[1] += params * times
            totals[2] += acts * times
        return records[-1].name

    source = add(layer_records.stem(spec, layer_records.INPUT, channels))
    for site in layer_records.block_sites(spec, output_stride):
        if site.index <= 2:
            records = layer_records.block(spec, site.stage, site.prefix, source, site.c_in, site.stride,
                                          dilation=site.dilation)
            source = add(records, site.stage.depth - 1 if site.index == 2 else 1)
    if include_top:
        add(layer_records.head(source, spec.stages[-1].width, classes))
    return Complexity(*totals)
