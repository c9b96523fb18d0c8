"""The paper's recipe: LR rule, warmup from 0.1x, half-period cosine, coupled L2 weight decay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keras_regnet.zoo import ZOO
from training.core.config import TrainConfig, resolve
from training.core.recipe import lr_at, recipe_lr


def test_lr_rule_reproduces_every_zoo_recipe():
    for entry in ZOO.values():
        assert recipe_lr(entry.batch_size) == pytest.approx(entry.base_lr), entry.name


def test_warmup_starts_at_a_tenth_and_ends_at_the_cosine():
    base, epochs, warmup = 0.8, 100, 5
    assert lr_at(0, base, epochs, warmup) == pytest.approx(0.1 * base)
    cosine_at_5 = 0.5 * base * (1 + math.cos(math.pi * 5 / 100))
    assert lr_at(5, base, epochs, warmup) == pytest.approx(cosine_at_5)
    assert lr_at(2.5, base, epochs, warmup) == pytest.approx(
            0.5 * base * (1 + math.cos(math.pi * 2.5 / 100)) * (0.1 * 0.5 + 0.5))


def test_cosine_is_half_at_midpoint_and_zero_at_end():
    assert lr_at(50, 0.8, 100, 5) == pytest.approx(0.4)
    assert lr_at(100, 0.8, 100, 5) == pytest.approx(0.0, abs=1e-12)


def test_schedule_per_step_matches_the_formula():
    from training.core.recipe import WarmupCosine

    steps_per_epoch, epochs, warmup = 10, 20, 5
    schedule = WarmupCosine(0.4, steps_per_epoch * epochs, steps_per_epoch * warmup)
    for step in (0, 7, 50, 123, 200):
        expected = lr_at(step / steps_per_epoch, 0.4, epochs, warmup)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_imagenet_defaults_follow_the_zoo_recipe():
    cfg, _, _ = __import__("training.run", fromlist=["prepare"]).prepare(
        TrainConfig(model="RegNetY-600MF", dataset="imagenet2012", data_dir="."))
    assert (cfg.batch_size, cfg.lr, cfg.epochs, cfg.warmup_epochs) == (1024, 0.8, 100, 5.0)
    assert (cfg.weight_decay, cfg.momentum, cfg.label_smoothing, cfg.image_size) == (5e-5, 0.9, 0.0, 224)
    assert (cfg.crop, cfg.precise_bn_images) == ("pycls", 8192)  # pycls BN.NUM_SAMPLES_PRECISE
    assert resolve(TrainConfig()).precise_bn_images == 0  # digits: off
    small = resolve(TrainConfig(batch_size=256))
    assert small.lr == pytest.approx(0.2)


def test_coupled_l2_is_the_gradient_of_the_l2_term():
    """g + wd * w: one SGD step equals plain SGD on loss + wd/2 * ||w||^2 (not decoupled decay)."""
    import keras
    import tensorflow as tf

    from training.core.recipe import coupled_l2, make_optimizer

    wd, lr = 0.01, 0.5
    w0 = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    x = tf.constant([[1.0, 2.0]])

    def run(coupled: bool) -> np.ndarray:
        w = tf.Variable(w0)
        opt = make_optimizer(lr, momentum=0.9)
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.matmul(x, w) ** 2)
                if not coupled:
                    loss += 0.5 * wd * tf.reduce_sum(w ** 2)
            grads = tape.gradient(loss, [w])
            if coupled:
                grads = coupled_l2(grads, [w], wd)
            opt.apply_gradients(zip(grads, [w]))
        return w.numpy()

    np.testing.assert_allclose(run(True), run(False), rtol=1e-6)
    # Keras' decoupled weight_decay is a different update: the recipe must not use it.
    decoupled = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd)
    w = tf.Variable(w0)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.matmul(x, w) ** 2)
        decoupled.apply_gradients(zip(tape.gradient(loss, [w]), [w]))
    assert np.abs(w.numpy() - run(True)).max() > 1e-4
    assert make_optimizer(lr).nesterov and make_optimizer(lr).weight_decay is None


def _pycls_epoch_lr(cur_epoch: float, base_lr: float, max_epoch: float, warmup_epochs: float,
                    warmup_factor: float = 0.1, min_lr: float = 0.0) -> float:
    """Transcribed from pycls/core/optimizer.py: lr_fun_cos then get_epoch_lr's linear warmup."""
    lr = 0.5 * (1.0 + np.cos(np.pi * cur_epoch / max_epoch))
    lr = (1.0 - min_lr) * lr + min_lr
    lr = lr * base_lr
    if cur_epoch < warmup_epochs:
        alpha = cur_epoch / warmup_epochs
        lr *= warmup_factor * (1.0 - alpha) + alpha
    return lr


def test_per_step_lr_equals_pycls_get_epoch_lr_at_the_fractional_epoch():
    """RegNetY-600MF's ImageNet run: 1251 steps/epoch, 100 epochs, 5 warmup; every 97th step."""
    import tensorflow as tf

    from training.core.recipe import WarmupCosine

    steps_per_epoch, epochs, warmup, base = 1_281_167 // 1024, 100, 5, 0.8
    schedule = WarmupCosine(base, steps_per_epoch * epochs, round(warmup * steps_per_epoch))
    steps = np.arange(0, steps_per_epoch * epochs + 1, 97)
    ours = schedule(tf.constant(steps)).numpy()
    reference = np.array([_pycls_epoch_lr(s / steps_per_epoch, base, epochs, warmup) for s in steps])
    np.testing.assert_allclose(ours, reference, rtol=2e-5, atol=1e-7)
    # pycls sets the LR once per epoch (at the epoch's start): our per-step value differs from it
    # by at most one epoch's change, largest in the warmup (0.9 / 5 of the base LR per epoch).
    per_epoch = np.array([_pycls_epoch_lr(s // steps_per_epoch, base, epochs, warmup) for s in steps])
    assert 0.17 * base < np.abs(ours - per_epoch).max() < 0.18 * base
    after_warmup = steps >= warmup * steps_per_epoch
    assert np.abs(ours - per_epoch)[after_warmup].max() < 0.016 * base
