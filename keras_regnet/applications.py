"""Public builders: the zoo models (the paper's 24 and six beyond it), RegNet(...) and AnyNet(...).

Each zoo builder is name -> RegNetParams -> NetSpec -> `build`; there is no per-model code.
The Keras 2 keras.applications names (RegNetX002 ... RegNetY320) are aliases, so Keras 2 code moves
over by changing the import.
"""

from __future__ import annotations

import textwrap
from typing import Any, Callable, Sequence

import keras

from keras_regnet.complexity import complexity
from keras_regnet.model import APPLICATION_ARGS_DOC, RETURNS_DOC, build
from keras_regnet.regnet import RegNetParams
from keras_regnet.spec import make_spec
from keras_regnet.zoo import ZOO

_ZOO_DOC = """{display} ({origin}).

{flops:.1f}M multiply-adds and {params:.2f}M parameters at 224x224 with the 1000-class top;
{weights_line}. The network of
`RegNetParams({params_repr})`:
{stages} stages of depths {depths} and widths {widths}.
Keras 2's keras.applications name `{keras2}` is an alias.

Args:
{args}
Returns:
{returns}
Example:

>>> import keras_regnet
>>> model = keras_regnet.{function}(include_top=False, input_shape=(224, 224, 3))
>>> model.output_shape
(None, 7, 7, {last_width})
>>> sorted(model.pyramid_outputs)
['P1', 'P2', 'P3', 'P4', 'P5']
"""


def zoo_docstring(model_id: str) -> str:
    """The docstring of a zoo builder: its figures (analytic flops/params, published top-1) and args."""
    entry = ZOO[model_id]
    spec, p = entry.spec(), entry.params
    cx = complexity(spec)
    from keras_regnet.pretrained.tags import presets_of

    tags = ", ".join(f'"{row.tag}"' for row in presets_of(entry))
    if entry.top1_err is None:
        origin = f"beyond the paper: {entry.beyond_paper}"
        weights_line = f"no pycls weights; published weights: weights={tags or 'none'}"
    else:
        origin = 'Radosavovic et al., 2020, "Designing Network Design Spaces"'
        weights_line = (f"published ImageNet top-1 accuracy {100.0 - entry.top1_err:.1f}% (error {entry.top1_err:.2f}%) "
                        f"for the reference's weights (`weights=\"imagenet\"`); all its weights: weights={tags}")
    return _ZOO_DOC.format(
        display=entry.display_name, flops=cx.flops / 1e6, params=cx.params / 1e6,
        origin=origin, weights_line=weights_line,
        params_repr=f"depth={p.depth}, w0={p.w0}, wa={p.wa}, wm={p.wm}, group_width={p.group_width}"
                    + (f", se_ratio={p.se_ratio}" if p.se_ratio else "")
                    + (f", group_rounding={p.group_rounding!r}" if p.group_rounding != "pycls" else ""),
        stages=len(spec.stages), depths=tuple(spec.depths), widths=tuple(spec.widths),
        keras2=entry.keras2_name, args=APPLICATION_ARGS_DOC, returns=RETURNS_DOC,
        function=entry.function_name, last_width=spec.stages[-1].width,
    )


def _zoo_builder(model_id: str) -> Callable[..., keras.Model]:
    entry = ZOO[model_id]

    def builder(
        include_top: bool = True,
        weights: str | None = None,
        input_tensor: Any = None,
        input_shape: tuple[int | None, int | None, int] | None = None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: str | None = "softmax",
        include_preprocessing: bool = True,
        name: str | None = None,
        **options: Any,
    ) -> keras.Model:
        return build(
            entry.spec(), include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, include_preprocessing, name, **options,
        )

    builder.__name__ = builder.__qualname__ = entry.function_name
    builder.__doc__ = zoo_docstring(model_id)
    return builder


def RegNet(
    depth: int,
    w0: int,
    wa: float,
    wm: float,
    group_width: int,
    bottleneck_ratio: float = 1.0,
    se_ratio: float = 0.0,
    stem_width: int = 32,
    stem_stride: int = 2,
    name: str = "regnet",
    **kwargs: Any,
) -> keras.Model:
    # Docstring: `RegNet.__doc__` below (argument docs shared with `build`).
    params = RegNetParams(depth, w0, wa, wm, group_width, bottleneck_ratio, se_ratio, stem_width, stem_stride)
    return build(params.to_spec(name=name), name=name, **kwargs)


def AnyNet(
    depths: Sequence[int],
    widths: Sequence[int],
    group_widths: Sequence[int] | int = 1,
    bottleneck_ratios: Sequence[float] | float = 1.0,
    block: str = "x",
    se_ratio: float = 0.0,
    stem_width: int = 32,
    strides: Sequence[int] | int = 2,
    stem_stride: int = 2,
    name: str = "anynet",
    **kwargs: Any,
) -> keras.Model:
    # Docstring: `AnyNet.__doc__` below (argument docs shared with `build`).
    spec = make_spec(
        depths, widths, group_widths, bottleneck_ratios, strides, block, se_ratio, stem_width,
        stem_stride, name,
    )
    return build(spec, name=name, **kwargs)


# The end of RegNet's and AnyNet's Args (stem stride, name, the keras.applications arguments) and Returns.
_BUILDER_TAIL_DOC = f"""    stem_stride: 2 (ImageNet) or 1 (small images). Defaults to 2.
    name: name of the spec and the model.
    **kwargs: the keras.applications arguments and numerics options of `build`:
{textwrap.indent(APPLICATION_ARGS_DOC, "    ")}
Returns:
{RETURNS_DOC}
Example:"""

RegNet.__doc__ = f"""Any RegNet from its parameters: the paper's quantized linear rule, then `build`.

Block j (0-based) gets width w0 + wa * j, snapped to the nearest w0 * wm^k (in log space) and
rounded to a multiple of 8;
consecutive blocks of equal width form a stage, and group widths are made compatible with them.
se_ratio > 0 gives a RegNetY (X blocks with squeeze-excitation), 0 a RegNetX.

Args:
    depth: number of blocks d.
    w0: initial width (> 0).
    wa: slope of the linear widths (>= 0).
    wm: width multiplier between quantized widths (> 1, or 1 with wa = 0).
    group_width: group width g of the 3x3 convs.
    bottleneck_ratio: inner width multiplier of each block (pycls's BOT_MUL, timm's bottle_ratio);
        the paper's b = 2 (inner width w / 2) is bottleneck_ratio=0.5. Defaults to 1.0.
    se_ratio: squeeze-excitation width as a fraction of the block input width (0.25 in RegNetY).
    stem_width: width of the 3x3 stem conv. Defaults to 32.
{_BUILDER_TAIL_DOC}

>>> import keras_regnet
>>> model = keras_regnet.RegNet(depth=4, w0=16, wa=12.0, wm=2.0, group_width=8, se_ratio=0.25,
...                             input_shape=(32, 32, 3), classes=6, name="tiny_regnety")
>>> model.get_layer("s1_b1_conv_b").groups  # 16 wide in groups of 8: widths 16, 24, 32
2
>>> [layer.name for layer in model.layers if layer.name.endswith("_b1_conv_b")]
['s1_b1_conv_b', 's2_b1_conv_b', 's3_b1_conv_b']
>>> model.output_shape
(None, 6)
"""

AnyNet.__doc__ = f"""Any AnyNet from per-stage lists (scalars apply to every stage), then `build`.

Args:
    depths: number of blocks per stage.
    widths: output width per stage.
    group_widths: group width of the 3x3 convs of X/Y blocks, per stage or one for all.
    bottleneck_ratios: inner width multipliers (inner width = round(width * ratio)), per stage or
        one for all; the inverse of the paper's b.
    block: "v" (vanilla), "r" (residual basic), "x" (X block) or "y" (Y block: X + SE).
    se_ratio: squeeze-excitation ratio, block "y" only (0.25 in the paper).
    stem_width: width of the 3x3 stem conv. Defaults to 32.
    strides: stride of each stage's first block (1 or 2), per stage or one for all.
{_BUILDER_TAIL_DOC}

>>> import keras_regnet
>>> model = keras_regnet.AnyNet(depths=[1, 1], widths=[16, 32], block="r", stem_width=8,
...                             include_top=False, pooling="avg", input_shape=(32, 32, 3))
>>> model.output_shape
(None, 32)
>>> model.get_layer("s2_b1_proj_conv").strides  # projection shortcut where the width changes
(2, 2)
"""


# The zoo, by the names of the paper (RegNetY1_6GF is RegNetY-1.6GF).
RegNetX200MF = _zoo_builder("regnetx_200mf")
RegNetX400MF = _zoo_builder("regnetx_400mf")
RegNetX600MF = _zoo_builder("regnetx_600mf")
RegNetX800MF = _zoo_builder("regnetx_800mf")
RegNetX1_6GF = _zoo_builder("regnetx_1.6gf")
RegNetX3_2GF = _zoo_builder("regnetx_3.2gf")
RegNetX4_0GF = _zoo_builder("regnetx_4.0gf")
RegNetX6_4GF = _zoo_builder("regnetx_6.4gf")
RegNetX8_0GF = _zoo_builder("regnetx_8.0gf")
RegNetX12GF = _zoo_builder("regnetx_12gf")
RegNetX16GF = _zoo_builder("regnetx_16gf")
RegNetX32GF = _zoo_builder("regnetx_32gf")
RegNetY200MF = _zoo_builder("regnety_200mf")
RegNetY400MF = _zoo_builder("regnety_400mf")
RegNetY600MF = _zoo_builder("regnety_600mf")
RegNetY800MF = _zoo_builder("regnety_800mf")
RegNetY1_6GF = _zoo_builder("regnety_1.6gf")
RegNetY3_2GF = _zoo_builder("regnety_3.2gf")
RegNetY4_0GF = _zoo_builder("regnety_4.0gf")
RegNetY6_4GF = _zoo_builder("regnety_6.4gf")
RegNetY8_0GF = _zoo_builder("regnety_8.0gf")
RegNetY12GF = _zoo_builder("regnety_12gf")
RegNetY16GF = _zoo_builder("regnety_16gf")
RegNetY32GF = _zoo_builder("regnety_32gf")
# Beyond the paper (keras_regnet.zoo): the SEER/SWAG sizes and the torchvision-rounded models.
RegNetY64GF = _zoo_builder("regnety_64gf")
RegNetY128GF = _zoo_builder("regnety_128gf")
RegNetY256GF = _zoo_builder("regnety_256gf")
RegNetX400MF_tv = _zoo_builder("regnetx_400mf_tv")
RegNetY800MF_tv = _zoo_builder("regnety_800mf_tv")
RegNetY8_0GF_tv = _zoo_builder("regnety_8.0gf_tv")

# Keras 2 keras.applications names.
RegNetX002 = RegNetX200MF
RegNetX004 = RegNetX400MF
RegNetX006 = RegNetX600MF
RegNetX008 = RegNetX800MF
RegNetX016 = RegNetX1_6GF
RegNetX032 = RegNetX3_2GF
RegNetX040 = RegNetX4_0GF
RegNetX064 = RegNetX6_4GF
RegNetX080 = RegNetX8_0GF
RegNetX120 = RegNetX12GF
RegNetX160 = RegNetX16GF
RegNetX320 = RegNetX32GF
RegNetY002 = RegNetY200MF
RegNetY004 = RegNetY400MF
RegNetY006 = RegNetY600MF
RegNetY008 = RegNetY800MF
RegNetY016 = RegNetY1_6GF
RegNetY032 = RegNetY3_2GF
RegNetY040 = RegNetY4_0GF
RegNetY064 = RegNetY6_4GF
RegNetY080 = RegNetY8_0GF
RegNetY120 = RegNetY12GF
RegNetY160 = RegNetY16GF
RegNetY320 = RegNetY32GF
# The same pattern beyond the paper (Keras 2 had none of these models).
RegNetY640 = RegNetY64GF
RegNetY1280 = RegNetY128GF
RegNetY2560 = RegNetY256GF
RegNetX004_tv = RegNetX400MF_tv
RegNetY008_tv = RegNetY800MF_tv
RegNetY080_tv = RegNetY8_0GF_tv

ZOO_BUILDERS = {e.name: globals()[e.function_name] for e in ZOO.values()}
