"""Ghost batch normalization (--bn_batch): plain BN with one group, per-group statistics otherwise."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_regnet.layers import GhostBatchNormalization


def _pair(ghost: int, channels: int = 6) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    rng = np.random.default_rng(1)
    gamma, beta = rng.uniform(0.5, 2.0, channels), rng.normal(0, 1, channels)
    mean, var = rng.normal(0, 1, channels), rng.uniform(0.5, 2.0, channels)
    layers = []
    for layer in (keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9),
                  GhostBatchNormalization(ghost, epsilon=1e-5, momentum=0.9)):
        layer.build((None, 4, 5, channels))
        layer.set_weights([gamma, beta, mean, var])
        layers.append(layer)
    return layers[0], layers[1]


def _images(batch: int = 8, channels: int = 6) -> np.ndarray:
    rng = np.random.default_rng(2)
    # Groups with different means and scales, so per-group statistics differ visibly.
    return (rng.normal(0, 1, (batch, 4, 5, channels)) * np.arange(1, batch + 1)[:, None, None, None]
            + np.arange(batch)[:, None, None, None]).astype("float32")


def test_one_group_is_plain_batch_norm():
    plain, ghost = _pair(ghost=8)
    x = _images()
    np.testing.assert_allclose(ghost(x, training=True), plain(x, training=True), rtol=1e-5, atol=1e-5)
    for a, b in zip(ghost.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ghost(x, training=False), plain(x, training=False), rtol=1e-6, atol=1e-6)


def test_groups_are_normalized_by_their_own_statistics():
    plain, ghost = _pair(ghost=2)
    gamma, beta, mean0, var0 = [w.copy() for w in ghost.get_weights()]
    x = _images()
    out = np.asarray(ghost(x, training=True))
    # numpy transcription: four groups of two images, biased variance over (N, H, W) per channel
    groups = x.reshape(4, 2, 4, 5, 6).astype("float64")
    m = groups.mean(axis=(1, 2, 3), keepdims=True)
    v = groups.var(axis=(1, 2, 3), keepdims=True)
    expected = ((groups - m) / np.sqrt(v + 1e-5) * gamma + beta).reshape(x.shape)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    new_mean, new_var = ghost.get_weights()[2:]
    np.testing.assert_allclose(new_mean, 0.9 * mean0 + 0.1 * m.mean(axis=0).ravel(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_var, 0.9 * var0 + 0.1 * v.mean(axis=0).ravel(), rtol=1e-5, atol=1e-5)
    # and it is not plain BN over the whole batch
    assert np.abs(out - np.asarray(plain(x, training=True))).max() > 0.1


def test_ghost_layer_round_trips_its_config_and_rejects_bad_sizes():
    layer = GhostBatchNormalization(16, epsilon=1e-5, name="s1_b1_bn_a")
    again = GhostBatchNormalization.from_config(layer.get_config())
    assert again.ghost_batch_size == 16 and again.epsilon == 1e-5
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="ghost_batch_size must be a positive integer"):
            GhostBatchNormalization(bad)


def test_model_built_with_bn_batch_uses_ghost_bn_with_the_same_weights():
    import keras_regnet
    from keras_regnet.regnet import RegNetParams

    spec = RegNetParams(depth=2, w0=8, wa=8.0, wm=2.0, group_width=8, stem_width=8).to_spec(name="tiny")
    plain = keras_regnet.build(spec, weights=None, input_shape=(32, 32, 3), classes=3)
    ghost = keras_regnet.build(spec, weights=None, input_shape=(32, 32, 3), classes=3, bn_batch=2)
    norms = [l for l in ghost.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(l, GhostBatchNormalization) and l.ghost_batch_size == 2 for l in norms)
    assert ghost.count_params() == plain.count_params()
    assert [w.path for w in ghost.weights] == [w.path for w in plain.weights]


def test_bn_images_states_the_normalization_batch():
    from training.core.config import TrainConfig
    from training.core.parts import bn_images

    assert bn_images(TrainConfig(batch_size=1024), replicas=8) == 128  # the paper's 8 GPUs
    assert bn_images(TrainConfig(batch_size=1024), replicas=1) == 1024  # one GPU, same batch
    assert bn_images(TrainConfig(batch_size=1024, bn_batch=128), replicas=1) == 128
    assert bn_images(TrainConfig(batch_size=1024, sync_bn=True), replicas=8) == 1024
    with pytest.raises(ValueError, match="--bn_batch=96 does not divide the per-replica batch of 128"):
        bn_images(TrainConfig(batch_size=1024, bn_batch=96), replicas=8)
