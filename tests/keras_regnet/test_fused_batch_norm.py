"""FusedBatchNormalization: Keras BN's maths (outputs, gradients, moving statistics) with TF's fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_regnet.layers import FusedBatchNormalization


def _pair(channels=6, momentum=0.9, epsilon=1e-5):
    rng = np.random.default_rng(0)
    layers = [cls(momentum=momentum, epsilon=epsilon) for cls in (keras.layers.BatchNormalization,
                                                                  FusedBatchNormalization)]
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.3, channels), rng.normal(0, 0.3, channels),
               rng.uniform(0.5, 2.0, channels)]
    for layer in layers:
        layer.build((None, 5, 7, channels))
        layer.set_weights(weights)
    return layers


def test_training_step_equals_keras_batch_norm():
    reference, fused = _pair()
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (4, 5, 7, 6)).astype("float32"))
    results = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(1.0, 7.0))
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y.numpy(), [g.numpy() for g in grads], layer.moving_mean.numpy(),
                        layer.moving_variance.numpy()))
    (y0, g0, m0, v0), (y1, g1, m1, v1) = results
    np.testing.assert_allclose(y1, y0, atol=1e-5)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m1, m0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(v1, v0, rtol=1e-5)  # biased batch variance, as Keras (kernel: unbiased)


def test_inference_and_unfusable_cases_use_keras_code():
    reference, fused = _pair()
    x = np.random.default_rng(2).normal(size=(2, 5, 7, 6)).astype("float32")
    np.testing.assert_allclose(fused(x, training=False).numpy(), reference(x, training=False).numpy(), atol=1e-6)
    fused.synchronized = True  # training/core/models.py's --sync_bn: the Keras path does the all-reduce
    assert not fused._fusable(tf.constant(x), None)
    assert not fused._fusable(tf.constant(x[:, 0]), None)  # 3-D input


def test_bfloat16_activations_stay_bfloat16_with_float32_statistics():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        reference, fused = _pair()
    finally:
        keras.config.set_dtype_policy("float32")
    x = tf.cast(tf.constant(np.random.default_rng(3).normal(1.0, 2.0, (4, 5, 7, 6)).astype("float32")), tf.bfloat16)
    y1, y0 = fused(x, training=True), reference(x, training=True)
    assert y1.dtype == tf.bfloat16 and fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y1, tf.float32).numpy(), tf.cast(y0, tf.float32).numpy(), atol=0.05)
    np.testing.assert_allclose(fused.moving_variance.numpy(), reference.moving_variance.numpy(), rtol=1e-3)


def test_saved_and_loaded_by_name():
    layer = FusedBatchNormalization(momentum=0.8, epsilon=1e-3, name="bn")
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, FusedBatchNormalization) and restored.momentum == pytest.approx(0.8)
