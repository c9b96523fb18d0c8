"""Precise BN (pycls BN.USE_PRECISE_STATS): moving statistics = mean of the batches' statistics."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from training import precise_bn


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="c1"),
        keras.layers.BatchNormalization(epsilon=1e-5, name="bn1"), keras.layers.ReLU(),
        keras.layers.Conv2D(5, 3, name="c2"), keras.layers.BatchNormalization(epsilon=1e-5, name="bn2"),
    ])


def test_moving_statistics_become_the_average_of_the_batch_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(i, 1 + i, (6, 8, 8, 3)).astype("float32") for i in range(3)]
    strategy = tf.distribute.get_strategy()
    step = precise_bn.make_statistics_step(strategy, model)
    labels = np.zeros((18,), "int64")
    iterator = iter(tf.data.Dataset.from_tensor_slices((np.concatenate(batches), labels)).batch(6))
    precise_bn.recompute(step, model, iterator, num_batches=3)

    # Independently: bn1 sees conv1's output; bn2 sees conv2(relu(bn1 in training mode)).
    conv1, conv2 = model.get_layer("c1"), model.get_layer("c2")
    means1, vars1, means2, vars2 = [], [], [], []
    for x in batches:
        a = np.asarray(conv1(x), np.float64)
        m, v = a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2))
        b = np.asarray(conv2(np.maximum((a - m) / np.sqrt(v + 1e-5), 0).astype("float32")), np.float64)
        means1.append(m), vars1.append(v), means2.append(b.mean(axis=(0, 1, 2))), vars2.append(b.var(axis=(0, 1, 2)))
    for name, mean, var in (("bn1", means1, vars1), ("bn2", means2, vars2)):
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean(mean, axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean(var, axis=0), rtol=1e-4, atol=1e-5)
    # Not the last batch's statistics alone, nor the batches pooled into one (variances differ).
    assert np.abs(model.get_layer("bn1").moving_variance.numpy() - vars1[-1]).max() > 0.1


def test_training_with_precise_bn_reports_it(tmp_path):
    from training.api import train

    result = train("regnetx_digits", epochs=1, batch_size=128, image_size=16, max_steps=2,
                   precise_bn_images=256, model_dir=str(tmp_path / "run"))
    assert result["precise_bn_images"] == 256 and result["steps"] == 2
    assert 0 <= result["top1_err"] <= 100
