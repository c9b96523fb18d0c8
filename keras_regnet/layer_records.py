"""The one walk over a NetSpec: every layer of the network as a plain record, in build order.

A block type is defined here and nowhere else. The Keras 3 builder and the tf_keras (QAT) twin
(`keras_regnet.blocks`) make one layer per record, `keras_regnet.complexity` costs the conv, BN and
dense records, and the reference-checkpoint converter (`keras_regnet.pretrained.to_keras`) maps the weighted
records to the reference modules they name. Pure Python: no TensorFlow, no Keras.

Records name their inputs, so branches (projection shortcut, squeeze-excitation) are explicit; the
last record of a block is its output. Widths may also be numpy arrays (one entry per network of a
batch): `design_space.fast_complexity` walks a whole batch at once, choosing the one data-dependent
branch (the projection shortcut) itself. Layer names are stable (`s2_b3_conv_b`, `s2_b3_se_reduce`):
weight conversion and QAT address layers by them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from keras_regnet.errors import ConfigError
from keras_regnet.spec import NetSpec, StageSpec, bottleneck_width, round_int

INPUT = "input"  # the source name of the stem's input (the image, or the preprocessing output)
CLASSIFIER = "predictions"  # the classifier (dense) layer, named as keras.applications names it
KINDS = ("conv", "bn", "relu", "add", "scale", "pool", "dense")
WEIGHTED_KINDS = ("conv", "bn", "dense")


class LayerRecord(NamedTuple):
    """One layer: what it computes, what feeds it, and the reference modules holding its weights.

    `pool` is a global average pool (to a 1x1 map if `keepdims`, else flattened); `scale`
    multiplies its two inputs; `add` sums them. `pycls` / `timm` name the reference module of a
    weighted layer under each checkpoint naming (None: that naming has no such layer). A named
    tuple rather than a dataclass: `complexity` makes a hundred of them per call.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    channels_in: int
    channels_out: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    activation: str | None = None  # a conv's own activation (SE: "relu", "sigmoid")
    keepdims: bool = False  # pool: keep a 1x1 map (SE) instead of flattening (head)
    final_bn: bool = False  # a residual branch's last BN (gamma may start at zero)
    pycls: str | None = None
    timm: str | None = None
    dilation: int = 1  # a 3x3 conv's dilation (> 1 only with an output stride, see `stage_geometry`)


def _conv(name: str, source: str, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
          *, refs: tuple[str | None, str | None], bias: bool = False,
          activation: str | None = None, dilation: int = 1) -> LayerRecord:
    """A bias-free (unless `bias`) kxk conv record with reference modules `refs` = (pycls, timm)."""
    return LayerRecord(name, "conv", (source,), c_in, c_out, kernel, stride, groups, bias, activation,
                       pycls=refs[0], timm=refs[1], dilation=dilation)


def _bn(name: str, source: str, channels: int, refs: tuple[str | None, str | None],
        final: bool = False) -> LayerRecord:
    """A batch normalization record."""
    return LayerRecord(name, "bn", (source,), channels, channels, final_bn=final, pycls=refs[0], timm=refs[1])


def _relu(name: str, source: str, channels: int) -> LayerRecord:
    """A ReLU record."""
    return LayerRecord(name, "relu", (source,), channels, channels)


def stem(spec: NetSpec, source: str = INPUT, channels: int = 3) -> Iterator[LayerRecord]:
    """3x3 conv (stride spec.stem_stride) + BN + ReLU, output `stem_relu`."""
    w = spec.stem_width
    yield _conv("stem_conv", source, channels, w, 3, spec.stem_stride, refs=("stem.conv", "stem.conv"))
    yield _bn("stem_bn", "stem_conv", w, ("stem.bn", "stem.bn"))
    yield _relu("stem_relu", "stem_bn", w)


def needs_projection(c_in: Any, c_out: Any, stride: Any) -> Any:
    """Whether a residual block's shortcut is a projection (1x1 conv + BN): its shape changes."""
    return (c_in != c_out) | (stride != 1)


def block(spec: NetSpec, stage: StageSpec, prefix: str, source: str, c_in: int,
          stride: int, project: bool | None = None, dilation: tuple[int, int] = (1, 1)) -> Iterator[LayerRecord]:
    """The layers of one block of type spec.block named `{prefix}_...`; the last one is its output.

    `project` forces the shortcut choice (None: `needs_projection`), for callers walking a batch.
    `dilation` = (first, other): the dilation of the block's first 3x3 conv and of its second (v, r
    blocks); a block whose two differ (a stage's first block once dilated) keeps its projection shortcut.
    """
    c_out = stage.width
    d_first, d_other = dilation
    module = prefix.replace("_", ".")  # s1_b2 -> s1.b2, the reference's block module

    def refs(pycls: str, timm: str | None = None) -> tuple[str, str | None]:
        return f"{module}.{pycls}", f"{module}.{timm}" if timm else None

    def name(suffix: str) -> str:
        return f"{prefix}_{suffix}"

    if spec.block == "v":  # vanilla: two 3x3 conv-BN-ReLU, no shortcut
        yield _conv(name("conv_a"), source, c_in, c_out, 3, stride, refs=refs("a"), dilation=d_first)
        yield _bn(name("bn_a"), name("conv_a"), c_out, refs("a_bn"))
        yield _relu(name("relu_a"), name("bn_a"), c_out)
        yield _conv(name("conv_b"), name("relu_a"), c_out, c_out, 3, refs=refs("b"), dilation=d_other)
        yield _bn(name("bn_b"), name("conv_b"), c_out, refs("b_bn"))
        yield _relu(name("relu"), name("bn_b"), c_out)
        return
    shortcut = source
    if (needs_projection(c_in, c_out, stride) | (d_first != d_other)) if project is None else project:  # walked first, at the input
        yield _conv(name("proj_conv"), source, c_in, c_out, 1, stride, refs=refs("proj", "downsample.conv"))
        yield _bn(name("proj_bn"), name("proj_conv"), c_out, refs("bn", "downsample.bn"))
        shortcut = name("proj_bn")
    if spec.block == "r":  # residual basic: two 3x3 convs (timm has no such block)
        yield _conv(name("conv_a"), source, c_in, c_out, 3, stride, refs=refs("f.a"), dilation=d_first)
        yield _bn(name("bn_a"), name("conv_a"), c_out, refs("f.a_bn"))
        yield _relu(name("relu_a"), name("bn_a"), c_out)
        yield _conv(name("conv_b"), name("relu_a"), c_out, c_out, 3, refs=refs("f.b"), dilation=d_other)
        yield _bn(name("bn_b"), name("conv_b"), c_out, refs("f.b_bn"), final=True)
        branch = name("bn_b")
    else:  # X (and Y): 1x1, grouped 3x3 (strided), [SE], 1x1
        w_b = bottleneck_width(c_out, stage.bottleneck_ratio)
        yield _conv(name("conv_a"), source, c_in, w_b, 1, refs=refs("f.a", "conv1.conv"))
        yield _bn(name("bn_a"), name("conv_a"), w_b, refs("f.a_bn", "conv1.bn"))
        yield _relu(name("relu_a"), name("bn_a"), w_b)
        yield _conv(name("conv_b"), name("relu_a"), w_b, w_b, 3, stride, w_b // stage.group_width,
                    refs=refs("f.b", "conv2.conv"), dilation=d_first)
        yield _bn(name("bn_b"), name("conv_b"), w_b, refs("f.b_bn", "conv2.bn"))
        yield _relu(name("relu_b"), name("bn_b"), w_b)
        inner = name("relu_b")
        if spec.block == "y":
            yield from _squeeze_excite(name, inner, w_b, se_width(c_in, spec.se_ratio), refs)
            inner = name("se_scale")
        yield _conv(name("conv_c"), inner, w_b, c_out, 1, refs=refs("f.c", "conv3.conv"))
        yield _bn(name("bn_c"), name("conv_c"), c_out, refs("f.c_bn", "conv3.bn"), final=True)
        branch = name("bn_c")
    yield LayerRecord(name("add"), "add", (shortcut, branch), c_out, c_out)
    yield _relu(name("relu"), name("add"), c_out)


def _squeeze_excite(name: Callable[[str], str], source: str, w_in: int, w_se: int,
                    refs: Callable[..., tuple[str, str | None]]) -> Iterator[LayerRecord]:
    """SE: global pool, 1x1 reduce (ReLU), 1x1 expand (sigmoid), channel-wise scale of `source`."""
    yield LayerRecord(name("se_pool"), "pool", (source,), w_in, w_in, keepdims=True)
    yield _conv(name("se_reduce"), name("se_pool"), w_in, w_se, 1, bias=True, activation="relu",
                refs=refs("f.se.f_ex.0", "se.fc1"))
    yield _conv(name("se_expand"), name("se_reduce"), w_se, w_in, 1, bias=True, activation="sigmoid",
                refs=refs("f.se.f_ex.2", "se.fc2"))
    yield LayerRecord(name("se_scale"), "scale", (source, name("se_expand")), w_in, w_in)


def se_width(block_input_width: Any, se_ratio: float) -> Any:
    """Squeeze-excitation width: round(se_ratio * block *input* width), at least 1, as the reference."""
    width = round_int(block_input_width * se_ratio)
    return np.maximum(width, 1) if isinstance(width, np.ndarray) else max(1, width)


OUTPUT_STRIDES = (8, 16, 32)


def check_output_stride(output_stride: Any) -> int | None:
    """None (the network's own strides) or one of OUTPUT_STRIDES; ValueError naming the value otherwise."""
    if output_stride is None or (not isinstance(output_stride, bool) and output_stride in OUTPUT_STRIDES):
        return None if output_stride is None else int(output_stride)
    raise ConfigError(f"output_stride must be None or one of {OUTPUT_STRIDES}, got output_stride={output_stride!r}")


@dataclass(frozen=True)
class StageGeometry:
    """A stage's applied stride, its dilation, and the dilation of its first block's first 3x3 conv."""

    stride: int
    dilation: int
    first_dilation: int


def stage_geometry(spec: NetSpec, output_stride: int | None = None) -> list[StageGeometry]:
    """Per-stage stride and dilation for an output stride (None: the spec's strides, no dilation).

    Once the network's stride (stem included) has reached `output_stride`, a stage's stride becomes 1
    and multiplies the dilation instead; the first block of a stage keeps the previous dilation in its
    strided conv (the rule of timm's RegNet `_get_stage_args` / `RegStage`, for any stage strides).
    """
    output_stride = check_output_stride(output_stride)
    net_stride, dilation, out = spec.stem_stride, 1, []
    for stage in spec.stages:
        previous = dilation
        if output_stride is not None and net_stride >= output_stride:
            dilation *= stage.stride
            out.append(StageGeometry(1, dilation, previous))
        else:
            net_stride *= stage.stride
            out.append(StageGeometry(stage.stride, dilation, previous))
    return out


def effective_total_stride(spec: NetSpec, output_stride: int | None = None) -> int:
    """Downsampling factor from the input to the last feature map under `output_stride`."""
    total = spec.stem_stride
    for geometry in stage_geometry(spec, output_stride):
        total *= geometry.stride
    return total


@dataclass(frozen=True)
class BlockSite:
    """Where a block sits: its name prefix, stage, input width, stride, index in the stage and dilations."""

    prefix: str
    stage: StageSpec
    c_in: int
    stride: int
    index: int  # 1-based; blocks after the first of a stage are identical
    dilation: tuple[int, int] = (1, 1)  # (first 3x3 conv, other 3x3 conv), see `block`


def block_sites(spec: NetSpec, output_stride: int | None = None) -> Iterator[BlockSite]:
    """Every block in order; block b of stage s is named s{s}_b{b}, only b1 strides or projects."""
    c_in = spec.stem_width
    for s, (stage, geo) in enumerate(zip(spec.stages, stage_geometry(spec, output_stride)), start=1):
        for b in range(1, stage.depth + 1):
            first = geo.first_dilation if b == 1 else geo.dilation
            yield BlockSite(f"s{s}_b{b}", stage, c_in, geo.stride if b == 1 else 1, b, (first, geo.dilation))
            c_in = stage.width


def body(spec: NetSpec, source: str = "stem_relu", output_stride: int | None = None) -> Iterator[LayerRecord]:
    """All blocks, each fed by the previous block's output (the first by `source`)."""
    for site in block_sites(spec, output_stride):
        record = None
        for record in block(spec, site.stage, site.prefix, source, site.c_in, site.stride, dilation=site.dilation):
            yield record
        source = record.name


def head(source: str, channels: int, classes: int) -> Iterator[LayerRecord]:
    """Classifier: global average pool + dense (`avg_pool`, `predictions`)."""
    yield LayerRecord("avg_pool", "pool", (source,), channels, channels)
    yield LayerRecord(CLASSIFIER, "dense", ("avg_pool",), channels, classes, bias=True,
                      pycls="head.fc", timm="head.fc")


def network(spec: NetSpec, include_top: bool = True, classes: int = 1000,
            channels: int = 3, output_stride: int | None = None) -> Iterator[LayerRecord]:
    """Stem, body and (if include_top) head of `spec`, from INPUT (dilated for an `output_stride`)."""
    yield from stem(spec, INPUT, channels)
    last = None
    for last in body(spec, "stem_relu", output_stride):
        yield last
    if include_top:
        yield from head(last.name, spec.stages[-1].width, classes)
