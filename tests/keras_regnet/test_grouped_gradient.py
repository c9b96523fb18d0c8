"""Grouped convolutions train without oneDNN and in float64: the per-group gradient equals Keras' stock
grouped Conv2D, the oneDNN float32 path keeps TensorFlow's own gradient, and a grouped RegNet trains
in a process with TF_ENABLE_ONEDNN_OPTS=0."""

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from keras_regnet import grouped_gradient  # noqa: E402
from keras_regnet.layers import GroupedConv2D  # noqa: E402
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


def _forward_and_gradients(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * y * tf.cast(tf.range(1, y.shape[-1] + 1), y.dtype))  # channels weigh apart
    return [t.numpy() for t in (y, *tape.gradient(loss, [x, *layer.trainable_weights]))]


@pytest.mark.parametrize("dtype, stride, padding, dilation, groups", [
    ("float32", 1, "same", 1, 4), ("float32", 2, "valid", 1, 8), ("float64", 1, "same", 1, 2),
    ("float64", 2, "same", 1, 4), ("float64", 1, "valid", 2, 4), ("float32", 1, "same", 2, 4),
    ("float64", 1, "same", 4, 8)])
def test_per_group_gradient_equals_the_stock_layer(monkeypatch, dtype, stride, padding, dilation, groups):
    monkeypatch.setattr(grouped_gradient, "has_native_gradient", lambda name: False)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 9, 9, 32)), dtype)
    kwargs = dict(strides=stride, padding=padding, dilation_rate=dilation, groups=groups, dtype=dtype)
    ours, stock = GroupedConv2D(32, 3, **kwargs), keras.layers.Conv2D(32, 3, **kwargs)
    ours.build(x.shape)
    stock.build(x.shape)
    stock.set_weights(ours.get_weights())
    tolerance = 1e-4 if dtype == "float32" else 1e-10
    for a, b in zip(_forward_and_gradients(ours, x), _forward_and_gradients(stock, x)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("stride, padding, dilation", [(1, "same", 2), (1, "same", 4), (1, "valid", 2)])
def test_native_path_with_dilation_equals_the_stock_layer(stride, padding, dilation):
    """The path a dilated model (output_stride) takes in float32: forward and gradients as stock Conv2D."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 11, 11, 32)), "float32")
    kwargs = dict(strides=stride, padding=padding, dilation_rate=dilation, groups=4)
    ours, stock = GroupedConv2D(32, 3, **kwargs), keras.layers.Conv2D(32, 3, **kwargs)
    ours.build(x.shape)
    stock.build(x.shape)
    stock.set_weights(ours.get_weights())
    for a, b in zip(_forward_and_gradients(ours, x), _forward_and_gradients(stock, x)):
        # float32 sums of ~200 terms: an element near zero carries rounding on the tensor's scale, so the
        # absolute tolerance is relative to the largest value (a wrong dilation is off by that scale)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()))


def test_float64_has_no_native_gradient_and_float32_follows_onednn():
    from tensorflow.python.util import _pywrap_util_port

    assert not grouped_gradient.has_native_gradient("float64")
    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert grouped_gradient.has_native_gradient("float32") == (_pywrap_util_port.IsMklEnabled() or gpu)


def _gradient_ops(layer, dtype):
    x_spec = tf.TensorSpec([2, 8, 8, 16], dtype)

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, [x, layer.kernel])

    graph = tf.function(step).get_concrete_function(x_spec).graph
    return [op.type for op in graph.get_operations()]


def test_native_path_keeps_one_grouped_op_and_the_fallback_has_one_per_group(monkeypatch):
    layer = GroupedConv2D(16, 3, padding="same", groups=4)
    layer.build((2, 8, 8, 16))
    monkeypatch.setattr(grouped_gradient, "has_native_gradient", lambda name: True)
    native = _gradient_ops(layer, tf.float32)
    assert "Split" not in native and "ConcatV2" not in native  # today's graph
    assert [native.count(op) for op in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")] == [1, 1, 1]
    monkeypatch.setattr(grouped_gradient, "has_native_gradient", lambda name: False)
    fallback = _gradient_ops(layer, tf.float32)
    assert [fallback.count(op) for op in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")] == [4, 4, 4]


TRAIN_WITHOUT_ONEDNN = """
import keras, numpy as np
import keras_regnet
from keras_regnet import grouped_gradient
from keras_regnet.resolve import resolve_spec
assert not grouped_gradient.has_native_gradient("float32"), "oneDNN is still on"
keras.utils.set_random_seed(0)
model = keras_regnet.build(resolve_spec("regnety_digits"), input_shape=(16, 16, 3), classes=4)
assert any(getattr(layer, "groups", 1) > 1 for layer in model.layers)
model.compile(keras.optimizers.SGD(0.02, momentum=0.9), "sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x, y = rng.uniform(0, 255, (8, 16, 16, 3)), np.arange(8) % 4
losses = model.fit(x, y, batch_size=8, epochs=6, verbose=0).history["loss"]
print("losses", losses)
assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses
"""


def test_a_grouped_regnet_trains_with_onednn_off():
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", TRAIN_WITHOUT_ONEDNN], env=env, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
