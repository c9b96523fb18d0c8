"""The #22 levers measured by benchmarks/input_pipeline.py compute the trainer's train images: the
same pixels per seed (or within uint8 rounding, >= 35 dB), so their speed figures compare like work."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from benchmarks import input_levers
from training.data import augment
from training.data.pipeline import Source, train_dataset

SIZE, BATCH, BATCHES = 24, 4, 2


def _source() -> Source:
    """Eight 40x56 JPEGs of smooth colour plus noise (labels 0..7), decoded by `train_image`."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    jpegs = []
    for i in range(8):
        base = np.stack([xx * 4 + 10 * i, yy * 5, (xx + yy) * 2], axis=-1) + rng.normal(0, 20, (40, 56, 3))
        jpegs.append(tf.io.encode_jpeg(np.clip(base, 0, 255).astype(np.uint8), quality=90).numpy())

    def records(ctx, seed=None):
        return tf.data.Dataset.from_tensor_slices((jpegs, list(range(8))))

    return Source("jpegs", 8, 8, 0, records, records,
                  lambda payload, seed, size: augment.train_image(payload, seed, size), None)


def _trainer_stream(source: Source) -> list[tuple[np.ndarray, np.ndarray]]:
    ds = train_dataset(source, None, BATCH, 0, 0, BATCHES, SIZE, 0, deterministic=True)
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _lever_stream(build, source: Source) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in build(source, BATCH, BATCHES, SIZE, True)]


def test_lighting_per_batch_gives_the_trainers_pixels_exactly():
    source = _source()
    expected = _trainer_stream(source)
    got = _lever_stream(input_levers.batched_lighting, source)
    assert len(got) == BATCHES
    for (image, label), (want, want_label) in zip(got, expected):
        np.testing.assert_array_equal(label, want_label)
        np.testing.assert_array_equal(image, want)  # per-image offsets from each element's own seed


def test_one_graph_per_batch_gives_the_trainers_pixels_exactly():
    source = _source()
    for (image, label), (want, want_label) in zip(_lever_stream(input_levers.one_graph_per_batch, source),
                                                  _trainer_stream(source)):
        np.testing.assert_array_equal(label, want_label)
        np.testing.assert_array_equal(image, want)


def test_uint8_between_stages_changes_pixels_by_rounding_only():
    source = _source()
    diffs = [got[0] - want[0] for got, want in zip(_lever_stream(input_levers.uint8_between_stages, source),
                                                   _trainer_stream(source))]
    diff = np.concatenate(diffs)
    # rounding the resized image to uint8 moves a pixel by at most half a grey level (truncating
    # would move it by up to one; a lighting offset dropped or misapplied by far more)
    assert 0.0 < np.abs(diff).max() <= 0.5 + 1e-3
    psnr = 10 * np.log10(255.0**2 / np.mean(diff.astype(np.float64) ** 2, axis=(1, 2, 3)))
    assert psnr.mean() >= 35.0


def test_lighting_per_batch_adds_each_images_own_offset_per_channel():
    images = tf.reshape(tf.range(2 * 3 * 5 * 3, dtype=tf.float32), [2, 3, 5, 3])
    offsets = tf.constant([[1.0, -2.0, 3.0], [-40.0, 50.0, 60.0]])
    out = input_levers.add_lighting_batch(images, offsets).numpy()
    np.testing.assert_array_equal(out, images.numpy() + offsets.numpy()[:, None, None, :])


def test_decode_ceilings_keep_the_trainers_crop_and_resize():
    source = _source()
    payloads = [p for p, _ in source.train_records(None, 0).take(BATCH * BATCHES)]
    for build, stage in ((input_levers.stage_alone, lambda crop: crop),
                         (input_levers.decode_resize_alone, lambda crop: augment.resize(crop, SIZE))):
        pixels = np.concatenate([x.numpy() for x, _ in build(source, BATCH, BATCHES, SIZE, True)])
        for position, payload in enumerate(payloads):
            seed = input_levers.element_seed(tf.constant(position, tf.int64))
            crop = augment.decode_and_random_crop(payload, tf.random.experimental.stateless_split(seed, 3)[0])
            np.testing.assert_array_equal(pixels[position], tf.cast(stage(crop)[0, 0], tf.float32).numpy())
