"""TensorFlow grouped convolution that trains on every device: the native kernel where it has a gradient,
one convolution per group elsewhere.

TensorFlow's native CPU kernels run a grouped convolution forward but have no gradient for it
(tensorflow#51825): only the oneDNN rewrite (float32 and bfloat16 on x86, on by default; off with
TF_ENABLE_ONEDNN_OPTS=0 and on other CPUs) and GPUs have one. Which of the two applies is read once
per process; where neither does (float64 anywhere, any dtype without oneDNN) the convolution is split
into one ordinary convolution per group, whose gradients every kernel has. Measured on RegNetY-600MF's
grouped convs without oneDNN, that was the fastest correct way, forward and backward (TensorFlow's
Eigen grouped forward op is itself slower than the split), ahead of a block-diagonal dense kernel and
a depthwise expansion (benchmarks/grouped_candidates.py, docs/results/grouped_conv.md).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

ONEDNN_GRADIENT_DTYPES = frozenset({"float32", "bfloat16"})
GPU_GRADIENT_DTYPES = frozenset({"float16", "bfloat16", "float32"})


@functools.cache
def _kernels_with_grouped_gradient() -> tuple[bool, bool]:
    """(oneDNN's rewrites are on, a GPU is visible), read once per process."""
    import tensorflow as tf

    try:
        from tensorflow.python.util import _pywrap_util_port

        onednn = bool(_pywrap_util_port.IsMklEnabled())  # reads TF_ENABLE_ONEDNN_OPTS and the CPU
    except (ImportError, AttributeError):
        onednn = False  # unknown: the per-group gradient is correct everywhere
    return onednn, bool(tf.config.list_physical_devices("GPU"))


def has_native_gradient(dtype: str) -> bool:
    """Whether TensorFlow's own grouped-convolution gradient exists here for `dtype` (a dtype name)."""
    onednn, gpu = _kernels_with_grouped_gradient()
    return (onednn and dtype in ONEDNN_GRADIENT_DTYPES) or (gpu and dtype in GPU_GRADIENT_DTYPES)


def grouped_convolution(inputs: Any, kernel: Any, strides: Sequence[int], padding: str,
                        dilations: Sequence[int], groups: int) -> Any:
    """NHWC grouped convolution: the native op where it has a gradient, else one convolution per group."""
    import tensorflow as tf

    def convolve(x: Any, w: Any) -> Any:
        return tf.nn.convolution(x, w, strides=list(strides), padding=padding.upper(),
                                 dilations=list(dilations), data_format="NHWC")

    if has_native_gradient(tf.as_dtype(inputs.dtype).name):
        return convolve(inputs, kernel)
    pairs = zip(tf.split(inputs, groups, axis=-1), tf.split(kernel, groups, axis=-1))
    return tf.concat([convolve(x, w) for x, w in pairs], axis=-1)
