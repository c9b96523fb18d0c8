"""Public builders: the 24 zoo models, RegNet(...) and AnyNet(...) from their parameters.

Each zoo builder is name -> RegNetParams -> NetSpec -> `build`; there is no per-model code.
The Keras 2 keras.applications names (RegNetX002 ... RegNetY320) are aliases, so Keras 2 code moves
over by changing the import.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras

from keras_regnet.model import build
from keras_regnet.regnet import RegNetParams
from keras_regnet.spec import make_spec
from keras_regnet.zoo import ZOO

_ARGS_DOC = """
    Args (as keras.applications):
        include_top: whether to include the pooling + dense classifier.
        weights: None (random init), "imagenet" (the reference's released weights), or a path to
            a .weights.h5 / .keras file or a reference checkpoint (.safetensors, .npz, torch .pth).
        input_tensor: optional Keras tensor to use as the model input (same checks as input_shape).
        input_shape: optional (height, width, channels), sides None or >= the total stride;
            defaults to (None, None, 3). Any channel count: pretrained RGB weights get their
            stem kernel adapted (1 channel: sum over RGB; C > 3: tiled and scaled by 3 / C).
        pooling: with include_top=False: None (4D feature map), "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier ("softmax", None for logits, or any
            Keras activation); float32 under a mixed precision policy.
        include_preprocessing: if True the model takes RGB in [0, 255] and normalizes it itself
            (other channel counts with the channel mean of the ImageNet statistics).
        name: model name.
    Returns:
        A `keras.Model` with `pyramid_outputs` {"P1": ..., "P5": ...} (keras-hub's convention).
"""


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
    builder.__doc__ = (
        f"{entry.display_name} (published top-1 error {entry.top1_err:.1f}%).\n{_ARGS_DOC}"
    )
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
    """Any RegNet from its parameters (d, w0, wa, wm, g, b); se_ratio > 0 gives a RegNetY.

    `bottleneck_ratio` multiplies the width into the inner width (pycls's BOT_MUL, timm's
    bottle_ratio): the paper's b = 2 (inner width w / 2) is bottleneck_ratio=0.5.

    Remaining keyword arguments are the keras.applications ones (include_top, weights, ...).
    """
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
    """Any AnyNet from per-stage lists (scalars broadcast); block is "v", "r", "x" or "y".

    `bottleneck_ratios` are multipliers (inner width = round(width * ratio)), 1 / the paper's b.

    Remaining keyword arguments are the keras.applications ones (include_top, weights, ...).
    """
    spec = make_spec(
        depths, widths, group_widths, bottleneck_ratios, strides, block, se_ratio, stem_width,
        stem_stride, name,
    )
    return build(spec, name=name, **kwargs)


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

ZOO_BUILDERS = {e.name: globals()[e.function_name] for e in ZOO.values()}
