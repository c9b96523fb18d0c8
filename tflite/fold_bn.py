"""Inference graph with BatchNormalization folded into the convolution before it.

For a conv with kernel W (and bias b, zero if none) followed by BN(gamma, beta, mean, var, eps):
  scale = gamma / sqrt(var + eps),  W' = W * scale (per output channel),  b' = (b - mean) * scale + beta
so conv'(x) = BN(conv(x)) in inference mode, with one conv + bias instead of conv + 4 element-wise
ops per BN. The folded model is a clone of the functional graph in which each folded BN is left out
and its conv gains a bias; weights are computed in float64. A BN is folded only if its
input comes straight from a linear (no activation) 2-D convolution whose output feeds nothing else,
so grouped convs (`GroupedConv2D`) fold too; everything else is copied unchanged. For export only:
the folded model has no BN statistics and must not be trained.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_regnet.errors import ExportError


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """{bn layer name: conv layer name} for every BN that can be folded into the conv feeding it."""
    pairs: dict[str, str] = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        parent = layer.input._keras_history.operation
        if (isinstance(parent, keras.layers.Conv2D) and parent.data_format == "channels_last"
                and parent.activation in (None, keras.activations.linear)
                and len(parent._inbound_nodes) == 1 and len(parent._outbound_nodes) == 1):
            pairs[layer.name] = parent.name
    return pairs


def folded_conv_weights(kernel: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray | None,
                        beta: np.ndarray | None, mean: np.ndarray, var: np.ndarray,
                        epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(W', b') of conv followed by inference-mode BN; the kernel's last axis is the output channel."""
    if kernel.shape[-1] != mean.shape[-1]:
        raise ExportError(f"conv kernel {kernel.shape} has {kernel.shape[-1]} output channels but BN has "
                          f"{mean.shape[-1]}")
    dtype = kernel.dtype
    scale = (np.ones_like(mean, np.float64) if gamma is None else gamma.astype(np.float64))
    scale = scale / np.sqrt(var.astype(np.float64) + epsilon)
    shift = np.zeros_like(scale) if beta is None else beta.astype(np.float64)
    b = np.zeros_like(scale) if bias is None else bias.astype(np.float64)
    new_kernel = kernel.astype(np.float64) * scale
    new_bias = (b - mean.astype(np.float64)) * scale + shift
    return new_kernel.astype(dtype), new_bias.astype(dtype)


def _bn_arrays(bn: keras.layers.BatchNormalization) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    gamma = bn.gamma.numpy() if bn.scale else None
    beta = bn.beta.numpy() if bn.center else None
    return gamma, beta, bn.moving_mean.numpy(), bn.moving_variance.numpy()


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """An inference-only clone of a functional model with every foldable BN folded into its conv."""
    from keras.src.models.functional import Functional

    if not isinstance(model, Functional):
        raise ExportError(f"fold_batch_norm needs a functional keras.Model, got {type(model).__name__}")
    pairs = foldable_pairs(model)
    convs = {conv: bn for bn, conv in pairs.items()}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if layer.name in convs:
            config["use_bias"] = True
            config["bias_initializer"] = "zeros"
        return layer.__class__.from_config(config)

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        return args[0] if layer.name in pairs else layer(*args, **kwargs)  # a folded BN is skipped

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.name in pairs or not layer.weights:
            continue
        target = folded.get_layer(layer.name)
        if layer.name in convs:
            bn = model.get_layer(convs[layer.name])
            bias = layer.bias.numpy() if layer.use_bias else None
            target.set_weights(list(folded_conv_weights(layer.kernel.numpy(), bias, *_bn_arrays(bn),
                                                        bn.epsilon)))
        else:
            target.set_weights(layer.get_weights())
    return folded
