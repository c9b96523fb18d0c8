"""Mixup / CutMix: soft labels, lambda range, CutMix's label weight = kept area, identity when off,
determinism, the soft-label loss, the pipeline and train-loop wiring, and the flag errors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training.data.mix import MixConfig, mix_batch, sample_beta

B, H, W, C = 6, 8, 10, 7


def _batch() -> tuple[tf.Tensor, tf.Tensor]:
    """Image i is the constant i + 1 (so every pixel tells which image it came from); labels 0..5."""
    images = tf.constant(np.arange(1, B + 1, dtype=np.float32)[:, None, None, None] * np.ones((1, H, W, 3), np.float32))
    return images, tf.constant(np.arange(B), tf.int64)


def _seed(i: int) -> tf.Tensor:
    return tf.constant([7, i], tf.int64)


def test_lambda_is_in_0_1_and_beta_distributed():
    for alpha in (0.05, 0.2, 1.0, 4.0):
        draws = np.array([float(sample_beta(_seed(i), alpha)) for i in range(200)])
        assert draws.min() >= 0.0 and draws.max() <= 1.0, alpha
        assert abs(draws.mean() - 0.5) < 0.08, alpha  # Beta(a, a) is symmetric around 1/2
    # Small alpha concentrates near 0 and 1, large alpha near 1/2 (Var = 1 / (4 (2a + 1))).
    small = np.array([float(sample_beta(_seed(i), 0.2)) for i in range(200)])
    large = np.array([float(sample_beta(_seed(i), 4.0)) for i in range(200)])
    assert small.var() > 0.12 and large.var() < 0.04


@pytest.mark.parametrize("cfg", [MixConfig(mixup_alpha=0.4), MixConfig(cutmix_alpha=1.0),
                                 MixConfig(mixup_alpha=0.4, cutmix_alpha=1.0)])
def test_mixed_labels_are_soft_and_sum_to_one(cfg):
    images, labels = _batch()
    for i in range(10):
        _, soft = mix_batch(images, labels, _seed(i), C, cfg)
        soft = soft.numpy()
        assert soft.shape == (B, C) and soft.min() >= 0.0
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
        # Only the image's own class and its partner's (B - 1 - i) carry weight.
        for row, own in zip(soft, range(B)):
            assert set(np.flatnonzero(row > 0)) <= {own, B - 1 - own}


def test_mixup_blends_the_images_with_the_label_weight():
    images, labels = _batch()
    mixed, soft = mix_batch(images, labels, _seed(3), C, MixConfig(mixup_alpha=1.0))
    lam = soft.numpy()[0, 0]
    assert 0.0 < lam < 1.0
    expected = lam * images.numpy() + (1 - lam) * images.numpy()[::-1]
    np.testing.assert_allclose(mixed.numpy(), expected, rtol=1e-6)


def test_cutmix_label_weight_equals_the_pasted_area_fraction():
    images, labels = _batch()
    seen_partial = False
    for i in range(20):
        mixed, soft = mix_batch(images, labels, _seed(i), C, MixConfig(cutmix_alpha=1.0))
        mixed, soft = mixed.numpy(), soft.numpy()
        for k in range(B):
            partner = B - 1 - k
            if partner == k:
                continue
            pasted = np.mean(mixed[k, :, :, 0] == partner + 1)
            kept = np.mean(mixed[k, :, :, 0] == k + 1)
            assert pasted + kept == pytest.approx(1.0)  # pixels come from one of the two, unblended
            assert soft[k, partner] == pytest.approx(pasted, abs=1e-6)
            assert soft[k, k] == pytest.approx(kept, abs=1e-6)
            seen_partial |= 0.0 < pasted < 1.0
        # The box is a rectangle: rows and columns containing pasted pixels form a full block.
        box = mixed[0, :, :, 0] == B
        if box.any():
            rows, cols = np.flatnonzero(box.any(1)), np.flatnonzero(box.any(0))
            assert box[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    assert seen_partial


def test_alpha_zero_is_the_identity_with_one_hot_labels():
    images, labels = _batch()
    mixed, soft = mix_batch(images, labels, _seed(0), C, MixConfig(0.0, 0.0))
    np.testing.assert_array_equal(mixed.numpy(), images.numpy())
    np.testing.assert_array_equal(soft.numpy(), np.eye(C, dtype=np.float32)[labels.numpy()])


def test_switch_prob_picks_cutmix_or_mixup_per_batch():
    images, labels = _batch()
    both = dict(mixup_alpha=1.0, cutmix_alpha=1.0)

    def is_cutmix(mixed: np.ndarray) -> bool:  # CutMix pixels stay integers 1..B; mixup blends them
        return bool(np.all(np.isin(mixed, np.arange(1, B + 1))))

    always_cut = [is_cutmix(mix_batch(images, labels, _seed(i), C, MixConfig(**both, switch_prob=1.0))[0].numpy())
                  for i in range(8)]
    never_cut = [is_cutmix(mix_batch(images, labels, _seed(i), C, MixConfig(**both, switch_prob=0.0))[0].numpy())
                 for i in range(8)]
    half = [is_cutmix(mix_batch(images, labels, _seed(i), C, MixConfig(**both, switch_prob=0.5))[0].numpy())
            for i in range(40)]
    assert all(always_cut) and not any(never_cut) and 8 <= sum(half) <= 32


def test_mixing_is_deterministic_in_the_seed():
    images, labels = _batch()
    cfg = MixConfig(mixup_alpha=0.4, cutmix_alpha=1.0)
    a = mix_batch(images, labels, _seed(5), C, cfg)
    b = mix_batch(images, labels, _seed(5), C, cfg)
    c = mix_batch(images, labels, _seed(6), C, cfg)
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    assert not np.array_equal(a[1].numpy(), c[1].numpy())


def test_a_corrupt_image_keeps_zero_label_mass():
    images, labels = _batch()
    labels = tf.constant([0, 1, -1, 3, 4, 5], tf.int64)
    _, soft = mix_batch(images, labels, _seed(1), C, MixConfig(mixup_alpha=1.0))
    assert soft.numpy().sum() == pytest.approx(B - 1, abs=1e-5)


def test_soft_label_loss_matches_the_hard_label_loss_and_keras_smoothing():
    from training.engines.tensorflow.step import _masked_metrics

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(B, C)), tf.float32)
    labels = tf.constant([0, 1, 2, 3, -1, 6], tf.int64)
    hard = [float(v) for v in _masked_metrics(logits, labels, C, 0.0)]
    soft = [float(v) for v in _masked_metrics(logits, tf.one_hot(labels, C), C, 0.0)]
    np.testing.assert_allclose(soft, hard, rtol=1e-5)
    assert hard[3:] == [5.0, 1.0]
    smoothed_hard = float(_masked_metrics(logits, labels, C, 0.1)[0])
    smoothed_soft = float(_masked_metrics(logits, tf.one_hot(labels, C), C, 0.1)[0])
    assert smoothed_soft == pytest.approx(smoothed_hard, rel=1e-5)
    # A 70/30 mix: loss is the weighted sum of the two hard losses; top-1 counts the 70% label.
    target = tf.constant([[0.7, 0.3] + [0.0] * (C - 2)], tf.float32)
    one = tf.constant([[3.0, 0.0] + [0.0] * (C - 2)], tf.float32)
    loss, top1, _, valid, invalid = (float(v) for v in _masked_metrics(one, target, C, 0.0))
    ce = [float(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant([k]), one)[0]) for k in (0, 1)]
    assert loss == pytest.approx(0.7 * ce[0] + 0.3 * ce[1], rel=1e-5)
    assert (top1, valid, invalid) == (1.0, 1.0, 0.0)


def test_pipeline_mixes_deterministically_and_resumes_mid_epoch():
    from training.data import digits_stream
    from training.data.pipeline import train_dataset

    source = digits_stream.make_source()
    kwargs = dict(batch_size=8, epoch=0, image_size=16, seed=3,
                  mix=MixConfig(mixup_alpha=0.4, cutmix_alpha=1.0), deterministic=True)
    full = list(train_dataset(source, None, start_batch=0, num_batches=4, **kwargs))
    tail = list(train_dataset(source, None, start_batch=2, num_batches=2, **kwargs))
    for (x, y), (xt, yt) in zip(full[2:], tail):
        np.testing.assert_array_equal(x.numpy(), xt.numpy())
        np.testing.assert_array_equal(y.numpy(), yt.numpy())
    x, y = full[0]
    assert y.shape == (8, 10) and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, atol=1e-6)
    assert (y.numpy().max(axis=1) < 1.0).any()  # actually mixed


def test_training_with_mixup_and_cutmix_runs_and_reports_dominant_label_accuracy(tmp_path):
    from training.api import train

    result = train("regnetx_digits", epochs=1, batch_size=32, image_size=16, max_steps=3,
                   model_dir=str(tmp_path), mixup_alpha=0.2, cutmix_alpha=1.0)
    assert result["steps"] == 3 and np.isfinite(result["loss"])
    assert result["skipped_images"]["train"] == 0.0


@pytest.mark.parametrize("field, value, message", [
    ("mixup_alpha", -0.1, "--mixup_alpha must be a finite number >= 0"),
    ("cutmix_alpha", float("inf"), "--cutmix_alpha must be a finite number >= 0"),
    ("cutmix_alpha", float("nan"), "--cutmix_alpha must be a finite number >= 0"),
    ("mixup_switch_prob", 1.5, "--mixup_switch_prob must be in [0, 1]"),
])
def test_bad_mix_flags_are_errors_naming_the_flag(field, value, message):
    from training.core.config import TrainConfig, validate

    with pytest.raises(ValueError) as info:
        validate(TrainConfig(**{field: value}))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
