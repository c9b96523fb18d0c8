"""BN folding for the serving graph: same logits as the BN model, no BN left, unsafe cases untouched."""

import keras
import numpy as np
import pytest

from keras_regnet import build, make_spec
from tflite.fold_bn import fold_batch_norm, foldable_pairs, folded_conv_weights

SIZE = 32


def _randomize_bn(model, seed=0):
    """BN statistics far from identity, so a wrong fold changes the logits."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.3, 2.0, n)])
    return model


def _tiny_y(bn_epsilon: float = 1e-5) -> keras.Model:
    spec = make_spec([1, 2], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8, stem_stride=1,
                     name="tiny_y")
    return _randomize_bn(build(spec, input_shape=(None, None, 3), classes=10, classifier_activation=None,
                               bn_epsilon=bn_epsilon))


@pytest.fixture(scope="module")
def model():
    return _tiny_y()


# Keras' default epsilon 1e-3 as well as pycls's 1e-5: against variances of 0.3-2, a fold that
# ignores the layer's epsilon moves each BN's scale by up to 0.17%, above the 1e-4 bound.
@pytest.mark.parametrize("bn_epsilon", [1e-5, 1e-3])
def test_folded_model_has_no_bn_and_equal_logits_within_1e_4_relative(bn_epsilon):
    model = _tiny_y(bn_epsilon)
    assert {l.epsilon for l in model.layers if isinstance(l, keras.layers.BatchNormalization)} == {bn_epsilon}
    folded = fold_batch_norm(model)
    assert not [l for l in folded.layers if isinstance(l, keras.layers.BatchNormalization)]
    grouped = [l for l in folded.layers if isinstance(l, keras.layers.Conv2D) and l.groups > 1]
    assert grouped and all(l.use_bias for l in grouped)  # grouped convs fold too
    x = np.random.default_rng(1).uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    want = model(x, training=False).numpy()
    got = folded(x, training=False).numpy()
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))
    assert folded.count_params() < model.count_params()  # 4 BN vectors -> 1 bias per folded pair


def test_every_bn_of_a_regnet_follows_a_conv_and_is_folded(model):
    bns = [l.name for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    pairs = foldable_pairs(model)
    assert sorted(pairs) == sorted(bns)
    assert pairs["s1_b1_bn_b"] == "s1_b1_conv_b" and pairs["stem_bn"] == "stem_conv"


def test_folded_weights_are_the_bn_formula():
    """conv'(x) = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, per output channel."""
    rng = np.random.default_rng(2)
    kernel, bias = rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4)
    gamma, beta, mean, var = rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.1, 2, 4)
    w, b = folded_conv_weights(kernel, bias, gamma, beta, mean, var, 1e-5)
    patch = rng.normal(size=(3, 3, 2))
    conv = np.einsum("hwi,hwio->o", patch, kernel) + bias
    np.testing.assert_allclose(np.einsum("hwi,hwio->o", patch, w) + b,
                               gamma * (conv - mean) / np.sqrt(var + 1e-5) + beta, rtol=1e-12)
    with pytest.raises(ValueError, match="4 output channels but BN has 3"):
        folded_conv_weights(kernel, None, None, None, mean[:3], var[:3], 1e-5)


def test_a_conv_with_a_non_zero_bias_folds_to_the_same_outputs_within_1e_5_relative():
    """conv(x) + b then BN: the fold keeps the conv's own bias, (b - mean) * scale + beta."""
    rng = np.random.default_rng(4)
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(5, 3, padding="same", use_bias=True, name="biased")
    net = _randomize_bn(keras.Model(inputs, keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(conv(inputs))))
    conv.bias.assign(rng.normal(0, 2.0, 5))  # as large as the conv's outputs, not zero-initialised
    assert foldable_pairs(net) == {"bn": "biased"}
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    want = net(x, training=False).numpy()
    got = fold_batch_norm(net)(x).numpy()
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


def test_bn_is_not_folded_when_the_conv_output_is_used_elsewhere_or_activated():
    inputs = keras.Input((8, 8, 3))
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    a = keras.layers.BatchNormalization(name="bn_shared")(shared)
    activated = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="activated")(inputs)
    b = keras.layers.BatchNormalization(name="bn_activated")(activated)
    plain = keras.layers.Conv2D(4, 3, padding="same", name="plain")(inputs)
    c = keras.layers.BatchNormalization(name="bn_plain")(plain)
    net = _randomize_bn(keras.Model(inputs, keras.layers.Concatenate()([a, shared, b, c])))
    assert foldable_pairs(net) == {"bn_plain": "plain"}
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(fold_batch_norm(net)(x).numpy(), net(x, training=False).numpy(), atol=1e-5)


def test_subclassed_models_are_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional keras.Model, got Net"):
        fold_batch_norm(Net())
