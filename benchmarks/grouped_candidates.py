"""Grouped-convolution gradients that work without oneDNN, timed side by side on RegNetY-600MF's shapes.

    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/grouped_candidates.py [--batch 16] [--rounds 3]

One forward + backward pass over one grouped 3x3 conv of each shape of RegNetY-600MF at 224 px (group
width 16; stride-2 convs padded as the builder pads them), per candidate: keras_regnet's fallback
(one convolution per group, forced), the native grouped op forward with per-group backprop ops as its
gradient, a block-diagonal dense kernel, a depthwise conv with each group's inputs summed, and (oneDNN
on only) TensorFlow's native gradient. Candidates alternate within each round; the last line prints
each one's median against keras_regnet's and the load average. Every candidate's gradients are
checked against the first's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_regnet import grouped_gradient  # noqa: E402

SHAPES = [(48, 112, 2), (112, 56, 2), (112, 28, 1), (256, 28, 2), (256, 14, 1), (608, 14, 2), (608, 7, 1)]
GROUP_WIDTH = 16


def _padded(x, stride):
    return (tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), "VALID") if stride == 2 else (x, "SAME")


def _conv(x, k, stride):
    x, padding = _padded(x, stride)
    return tf.nn.convolution(x, k, strides=stride, padding=padding)


def per_group(x, k, stride, groups):
    """keras_regnet's fallback, forced (it is chosen while tracing)."""
    x, padding = _padded(x, stride)
    native, grouped_gradient.has_native_gradient = grouped_gradient.has_native_gradient, lambda dtype: False
    try:
        return grouped_gradient.grouped_convolution(x, k, (stride, stride), padding, (1, 1), groups)
    finally:
        grouped_gradient.has_native_gradient = native


def native_forward(x, k, stride, groups):
    """The native grouped op forward; per-group backprop ops as its gradient."""
    x, padding = _padded(x, stride)
    conv = dict(strides=[1, stride, stride, 1], padding=padding)

    @tf.custom_gradient
    def convolve(x, k):
        def gradient(dy):
            parts = [tf.split(t, groups, axis=-1) for t in (x, k, dy)]
            dx = [tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(a), filter=b, out_backprop=d, **conv)
                  for a, b, d in zip(*parts)]
            dk = [tf.raw_ops.Conv2DBackpropFilter(input=a, filter_sizes=tf.shape(b), out_backprop=d, **conv)
                  for a, b, d in zip(*parts)]
            return tf.concat(dx, axis=-1), tf.concat(dk, axis=-1)

        return tf.nn.convolution(x, k, strides=stride, padding=padding), gradient

    return convolve(x, tf.convert_to_tensor(k))


def block_diagonal(x, k, stride, groups):
    kh, kw, width, channels = k.shape
    blocks = tf.reshape(k, [kh, kw, width, groups, channels // groups])
    dense = tf.einsum("hwigo,gf->hwgifo", blocks, tf.eye(groups, dtype=k.dtype))
    return _conv(x, tf.reshape(dense, [kh, kw, groups * width, channels]), stride)


def depthwise_sum(x, k, stride, groups):
    kh, kw, width, channels = k.shape
    out = channels // groups
    kernel = tf.reshape(tf.transpose(tf.reshape(k, [kh, kw, width, groups, out]), [0, 1, 3, 2, 4]),
                        [kh, kw, groups * width, out])
    x, padding = _padded(x, stride)
    y = tf.nn.depthwise_conv2d(x, kernel, [1, stride, stride, 1], padding)
    h, w = y.shape[1], y.shape[2]
    summed = tf.reduce_sum(tf.reshape(y, [-1, h, w, groups, width, out]), axis=4)  # over each group's inputs
    return tf.reshape(summed, [-1, h, w, channels])


def native(x, k, stride, groups):
    return _conv(x, k, stride)


def make_step(candidate, data):
    """tf.function: every shape's forward + backward; returns the gradients' squared norms."""

    @tf.function
    def step():
        norms = []
        for x, k, stride, groups in data:
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = candidate(x, k, stride, groups)
                loss = 0.5 * tf.reduce_sum(y * y)
            dx, dk = tape.gradient(loss, [x, k])
            norms += [tf.reduce_sum(dx * dx), tf.reduce_sum(dk * dk)]
        return norms

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = [(tf.constant(rng.normal(size=(args.batch, size, size, c)), tf.float32),
             tf.Variable(rng.normal(size=(3, 3, GROUP_WIDTH, c)), dtype=tf.float32), stride, c // GROUP_WIDTH)
            for c, size, stride in SHAPES]
    candidates = {"keras_regnet": per_group, "native_forward": native_forward, "block_diagonal": block_diagonal,
                  "depthwise_sum": depthwise_sum}
    if grouped_gradient.has_native_gradient("float32"):
        candidates["tf_native"] = native
    steps = {name: make_step(fn, data) for name, fn in candidates.items()}
    reference = [float(v) for v in steps["keras_regnet"]()]
    for name, step in steps.items():
        error = max(abs(float(a) - b) / b for a, b in zip(step(), reference))
        assert error < 1e-4, f"{name}: gradients differ from keras_regnet's by {error:.1e}"
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["keras_regnet"])
    onednn = "on" if grouped_gradient.has_native_gradient("float32") else "off"
    print("; ".join(f"{name} {statistics.median(t) * 1e3:.0f} ms ({statistics.median(t) / base:.2f}x)"
                    for name, t in times.items())
          + f"  [oneDNN {onednn}, batch {args.batch}, load average {os.getloadavg()[0]:.1f}]")


if __name__ == "__main__":
    main()
