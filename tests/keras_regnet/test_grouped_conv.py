"""The native grouped convolution equals Keras' stock Conv2D(groups=...) in forward and gradient."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from keras_regnet.layers import GroupedConv2D  # noqa: E402


@pytest.mark.parametrize("stride, padding, groups", [(1, "same", 4), (2, "valid", 8), (1, "valid", 2)])
def test_forward_and_gradients_equal_the_stock_layer(stride, padding, groups):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 9, 9, 32)).astype("float32"))
    fast = GroupedConv2D(32, 3, strides=stride, padding=padding, groups=groups, use_bias=True)
    stock = keras.layers.Conv2D(32, 3, strides=stride, padding=padding, groups=groups, use_bias=True)
    fast.build(x.shape)
    stock.build(x.shape)
    stock.set_weights(fast.get_weights())
    results = []
    for layer in (fast, stock):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        results.append((y, *tape.gradient(loss, [x, *layer.trainable_weights])))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_grouped_graph_has_no_xla_only_functions():
    layer = GroupedConv2D(16, 3, padding="same", groups=4)
    fn = tf.function(lambda t: layer(t)).get_concrete_function(tf.TensorSpec([1, 8, 8, 16]))
    graph = fn.graph.as_graph_def()
    attrs = [n for n in graph.node if "_XlaMustCompile" in n.attr]
    for f in graph.library.function:
        attrs += [f.signature.name for key in f.attr if key == "_XlaMustCompile"]
    assert attrs == []
    assert any(n.op == "Conv2D" for n in graph.node)


def test_config_round_trip_keeps_the_fast_class():
    layer = GroupedConv2D(16, 3, groups=4, name="g")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is GroupedConv2D and again.groups == 4
