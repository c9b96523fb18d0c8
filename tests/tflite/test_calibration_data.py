"""Calibration/eval image sources: the embedded digits split, image folders, and their errors."""

import numpy as np
import pytest

from tflite.calibration import load_images


def test_digits_train_and_test_are_disjoint_and_cover_the_dataset():
    train = load_images("digits:train", 16)
    test = load_images("digits:test", 16)
    assert len(train) + len(test) == 1797
    assert len(test) == 364  # every 5th image of each class (sum of ceil(n_c / 5)), as training holds out
    assert train.images.shape[1:] == (16, 16, 3) and train.images.dtype == np.float32
    assert 0.0 <= train.images.min() and train.images.max() <= 255.0 and train.images.max() > 200
    assert set(np.unique(test.labels)) == set(range(10))
    flat_train = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in flat_train for img in test.images[:50])


def test_digits_test_split_is_the_training_pipelines_eval_set():
    """Export scores a trained model on the very images training held out, pixel for pixel."""
    from training.data.digits_stream import make_source

    source = make_source()
    records = source.eval_records(None)
    expected = np.stack([source.eval_map(pixels, 16).numpy() for pixels, _ in records])
    labels = np.array([int(label) for _, label in records])
    test = load_images("digits:test", 16)
    np.testing.assert_allclose(test.images, expected, atol=1e-4)
    np.testing.assert_array_equal(test.labels, labels)


def test_limit_takes_the_first_images():
    assert len(load_images("digits:test", 8, limit=7)) == 7


def _write_png(path, value):
    import tensorflow as tf

    image = np.full((20, 30, 3), value, np.uint8)
    path.write_bytes(tf.io.encode_png(image).numpy())


def test_folder_with_class_subfolders_is_labelled_and_skips_corrupt_files(tmp_path):
    for label, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        _write_png(tmp_path / name / "a.png", 50 + 100 * label)
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"not an image")
    data = load_images(str(tmp_path), 16)
    assert data.images.shape == (2, 16, 16, 3)
    assert data.labels.tolist() == [0, 1]
    assert data.skipped == 1
    np.testing.assert_allclose(data.images[1], 150.0, atol=1.0)


def test_folder_without_images_fails_naming_the_flag(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"--calibration_data=.*yielded no images"):
        load_images(str(tmp_path), 16)


@pytest.mark.parametrize("source, message", [
    ("/no/such/folder", "neither"),
    ("digits:validation", "digits split"),
    ("", "must name a data source"),
])
def test_bad_sources_are_value_errors(source, message):
    with pytest.raises(ValueError, match=message):
        load_images(source, 16, flag="--eval_data")
