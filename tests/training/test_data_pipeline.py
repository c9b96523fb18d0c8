"""Input pipeline: augmentation shapes and ranges, decode-only-the-crop, corrupt images, sharding."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from training.data import augment, folder

from training.data import digits_stream
from training.data.pipeline import INVALID_LABEL, PADDING_LABEL, eval_dataset, train_dataset


def _jpeg(h: int = 48, w: int = 64, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(pixels, quality=95).numpy()


def test_train_augmentation_shapes_and_range():
    seed = tf.constant([3, 4], tf.int64)
    image = augment.train_image(tf.constant(_jpeg()), seed, 32)
    assert image.shape == (32, 32, 3) and image.dtype == tf.float32
    # 0-255 plus the unclipped lighting offset (at most a few units; 6 std of alpha is < 30)
    assert float(tf.reduce_min(image)) >= -30.0 and float(tf.reduce_max(image)) <= 285.0
    again = augment.train_image(tf.constant(_jpeg()), seed, 32)
    np.testing.assert_array_equal(image.numpy(), again.numpy())  # stateless: same seed, same image


@pytest.mark.parametrize("sampler", ["pycls", "tf_inception"])
def test_crop_window_follows_area_and_aspect_ranges(sampler):
    from training.data.crop import window_sampler

    shape = tf.constant([300, 400, 3], tf.int32)
    for i in range(40):
        y, x, h, w = window_sampler(sampler)(shape, tf.constant([i, 7], tf.int64)).numpy()
        assert 0 <= y and 0 <= x and y + h <= 300 and x + w <= 400
        area = h * w / (300 * 400)
        full_image_fallback = (h, w) == (300, 400)
        assert full_image_fallback or (0.08 * 0.95 <= area <= 1.0 and 0.7 <= w / h <= 1.4)


def test_decode_only_the_crop_equals_full_decode_then_crop():
    data = tf.constant(_jpeg(96, 128, seed=1))
    seed = tf.constant([5, 9], tf.int64)
    fast = augment.decode_and_random_crop(data, seed)
    slow = augment.decode_then_random_crop(data, seed)
    assert fast.dtype == tf.uint8 and fast.shape == slow.shape
    # Same window and pixels; only the crop's last column differs (chroma upsampling at its edge).
    np.testing.assert_array_equal(fast.numpy()[:, :-1], slow.numpy()[:, :-1])


def test_flip_before_resize_equals_flip_after():
    crop = tf.random.stateless_uniform([37, 53, 3], [4, 2], 0, 256, dtype=tf.int32)
    crop = tf.cast(crop, tf.uint8)
    before = augment.resize(tf.reverse(crop, [1]), 24)
    after = tf.reverse(augment.resize(crop, 24), [1])
    np.testing.assert_allclose(before.numpy(), after.numpy(), atol=1e-3)


def test_train_image_is_crop_flip_resize_plus_one_lighting_offset():
    data = tf.constant(_jpeg(60, 80, seed=3))
    seed = tf.constant([8, 1], tf.int64)
    image = augment.train_image(data, seed, 24).numpy()
    seeds = tf.random.experimental.stateless_split(seed, 3)
    crop = augment.decode_and_random_crop(data, seeds[0])
    flipped = tf.image.stateless_random_flip_left_right(crop, seeds[1])
    plain = augment.resize(flipped, 24).numpy()
    offset = augment.lighting_offset(seeds[2]).numpy()
    np.testing.assert_allclose(image - plain, np.broadcast_to(offset, image.shape), atol=1e-3)
    assert np.abs(offset).max() > 0.01  # the lighting noise is really applied


def test_png_takes_the_generic_path():
    png = tf.io.encode_png(np.full((20, 30, 3), 200, np.uint8))
    image = augment.train_image(png, tf.constant([1, 2], tf.int64), 16)
    assert image.shape == (16, 16, 3)


def test_eval_resizes_shorter_side_then_centre_crops():
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, 90:110] = 255  # a bright vertical band in the centre
    image = augment.eval_image(tf.io.encode_png(pixels), 56).numpy()
    assert image.shape == (56, 56, 3)
    assert image[:, 28].min() > 200 and image[:, 0].max() < 10  # centre kept, borders cropped
    assert round(56 / 0.875) == 64


def test_lighting_noise_has_the_pca_scale():
    offsets = np.stack([augment.lighting_offset(tf.constant([i, 0], tf.int64)).numpy() for i in range(300)])
    assert 0.5 < np.abs(offsets).mean() < 15.0  # std 0.1 x eigval 0.2175 x 255 ~ 5.5 per channel


def test_digits_split_is_stratified_and_disjoint():
    tx, ty, ex, ey = digits_stream.load_arrays()
    assert len(ty) + len(ey) == 1797 and tx.shape[1:] == (8, 8) and tx.dtype == np.uint8
    assert set(np.bincount(ey)) <= {35, 36, 37}  # every 5th image of each class
    assert tx.max() == 255


def _write_folder(root: str, corrupt: int) -> None:
    for c, name in enumerate(("cats", "dogs")):
        os.makedirs(os.path.join(root, name))
        for i in range(6):
            with open(os.path.join(root, name, f"{i}.jpg"), "wb") as f:
                f.write(_jpeg(24, 24, seed=10 * c + i))
    for i in range(corrupt):
        with open(os.path.join(root, "dogs", f"broken{i}.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    _write_folder(str(tmp_path), corrupt=2)
    source = folder.make_source(str(tmp_path))
    assert source.num_classes == 2 and source.num_train + source.num_eval == 14
    # One pass over the 12 train files (2 broken): they come out as placeholders with label -1.
    ds = train_dataset(source, None, batch_size=source.num_train, epoch=0, start_batch=0,
                       num_batches=1, image_size=16, seed=0, deterministic=True)
    (images, labels), = list(ds)
    assert images.shape == (source.num_train, 16, 16, 3)
    bad = int(np.sum(labels.numpy() == INVALID_LABEL))
    held_out_broken = sum(1 for p, _ in folder.split_files(str(tmp_path))[2] if "broken" in p)
    assert bad == 2 - held_out_broken
    assert set(labels.numpy()) - {INVALID_LABEL} <= {0, 1}


def test_train_stream_resumes_at_a_batch_position():
    source = digits_stream.make_source()
    kwargs = dict(batch_size=8, epoch=3, image_size=16, seed=1, deterministic=True)
    full = list(train_dataset(source, None, start_batch=0, num_batches=4, **kwargs))
    tail = list(train_dataset(source, None, start_batch=2, num_batches=2, **kwargs))
    for (a, la), (b, lb) in zip(full[2:], tail):
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other_epoch = list(train_dataset(source, None, start_batch=0, num_batches=1,
                                     **{**kwargs, "epoch": 4}))
    assert not np.array_equal(other_epoch[0][1].numpy(), full[0][1].numpy())


def test_eval_is_padded_to_whole_batches_with_masked_labels():
    source = digits_stream.make_source()
    batches = list(eval_dataset(source, None, batch_size=100, num_batches=4, image_size=16))
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert len(labels) == 400 and np.sum(labels >= 0) == source.num_eval == 364
    assert np.all(labels[364:] == PADDING_LABEL)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        folder.make_source(str(tmp_path))


def test_per_channel_offset_equals_the_broadcast_sum():
    image = tf.random.stateless_uniform([37, 41, 3], [1, 2], 0, 255)
    offset = tf.constant([1.5, -2.25, 3.1])
    fast = augment.add_per_channel(image, offset)
    assert fast.shape == (37, 41, 3)
    np.testing.assert_array_equal(fast.numpy(), (image + offset).numpy())
    np.testing.assert_array_equal(fast.numpy()[5, 7], image.numpy()[5, 7] + offset.numpy())


def test_train_val_layout_with_a_class_missing_from_val_and_an_extra_val_class(tmp_path):
    for split, names in (("train", ("ant", "bee", "cat")), ("val", ("ant", "bee"))):
        for name in names:
            os.makedirs(tmp_path / split / name)
            (tmp_path / split / name / "0.jpg").write_bytes(_jpeg(seed=len(name)))
    classes, train, held = folder.split_files(str(tmp_path))  # was FileNotFoundError on val/cat
    assert classes == ["ant", "bee", "cat"] and len(train) == 3
    assert sorted(label for _, label in held) == [0, 1]
    os.makedirs(tmp_path / "val" / "dog")
    with pytest.raises(ValueError, match=r"--data_dir=.*val/ has class folders that train/ lacks \(dog\)"):
        folder.split_files(str(tmp_path))
