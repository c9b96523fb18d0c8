"""Input channels like keras.applications (any count with weights=None) and beyond it: pretrained
RGB weights for 1 or C channels, the stem adapted by timm's `adapt_input_conv` rule."""

import warnings

import keras
import numpy as np
import pytest

import keras_regnet
from keras_regnet.pretrained.assign import adapt_input_kernel
from keras_regnet.imagenet_utils import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from tests.helpers.standin import place_imagenet_standin

TINY = keras_regnet.make_spec([1, 1], [16, 32], group_widths=8, block="y", se_ratio=0.25,
                              stem_width=8, name="tiny_y")


def test_any_channel_count_builds_with_imagenet_preprocessing():
    """As Keras 3's ConvNeXtTiny(weights=None, input_shape=(None, None, 1 or 4)); 4 warns as it does."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gray = keras_regnet.build(TINY, input_shape=(None, None, 1), classes=3)
    with pytest.warns(UserWarning, match="usually expects 1 or 3 input channels.*with 4 input channels"):
        four = keras_regnet.build(TINY, input_tensor=keras.Input((32, 32, 4)), classes=3)
    for model, channels in ((gray, 1), (four, 4)):
        norm = model.get_layer("preprocessing")
        assert norm.mean == (pytest.approx(float(IMAGENET_MEAN_RGB.mean())),) * channels
        assert norm.std == (pytest.approx(float(IMAGENET_STD_RGB.mean())),) * channels
        x = np.full((1, 32, 32, channels), 255.0 * IMAGENET_MEAN_RGB.mean(), "float32")
        np.testing.assert_allclose(np.asarray(keras.Model(model.input, norm.output)(x)), 0.0, atol=1e-5)
    assert keras_regnet.build(TINY, classes=3).get_layer("preprocessing").mean == \
        pytest.approx(tuple(IMAGENET_MEAN_RGB))  # RGB keeps the per-channel statistics


def test_adapt_input_kernel_is_timms_rule():
    """timm/models/_manipulate.py adapt_input_conv: 1 -> sum over RGB; C -> tile, cut, * 3 / C."""
    kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 5)).astype("float32")
    np.testing.assert_allclose(adapt_input_kernel(kernel, 1)[:, :, 0], kernel.sum(axis=2), rtol=1e-6)
    np.testing.assert_allclose(adapt_input_kernel(kernel, 2), kernel[:, :, :2] * 1.5, rtol=1e-6)
    five = adapt_input_kernel(kernel, 5)
    np.testing.assert_allclose(five, kernel[:, :, [0, 1, 2, 0, 1]] * 0.6, rtol=1e-6)
    assert adapt_input_kernel(kernel, 3) is not None and adapt_input_kernel(kernel, 3).shape == kernel.shape
    with pytest.raises(ValueError, match="channels=0"):
        adapt_input_kernel(kernel, 0)
    with pytest.raises(ValueError, match=r"RGB kernel .* got shape \(3, 3, 1, 5\)"):
        adapt_input_kernel(kernel[:, :, :1], 2)


def test_grayscale_model_gives_the_rgb_models_logits_on_the_replicated_image(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    place_imagenet_standin(tmp_path / "keras_home")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    options = dict(weights="imagenet", classifier_activation=None, include_preprocessing=False)
    rgb = keras_regnet.RegNetX200MF(input_shape=(64, 80, 3), **options)
    gray = keras_regnet.RegNetX200MF(input_shape=(64, 80, 1), **options)
    six = keras_regnet.RegNetX200MF(input_shape=(64, 80, 6), **options)
    image = np.random.default_rng(1).normal(size=(2, 64, 80, 1)).astype("float32")
    expected = np.asarray(rgb(np.repeat(image, 3, axis=-1)))
    np.testing.assert_allclose(np.asarray(gray(image)), expected, atol=1e-4)
    np.testing.assert_allclose(np.asarray(six(np.repeat(image, 6, axis=-1))), expected, atol=1e-4)
    # With the built-in normalization a 1-channel model also loads (channel-mean statistics).
    raw = keras_regnet.RegNetX200MF(weights="imagenet", input_shape=(64, 64, 1))
    np.testing.assert_allclose(raw.get_layer("stem_conv").kernel.numpy(),
                               rgb.get_layer("stem_conv").kernel.numpy().sum(axis=2, keepdims=True),
                               rtol=1e-6)


def test_a_keras_file_of_an_rgb_model_loads_into_a_four_channel_model(tmp_path):
    rgb = keras_regnet.build(TINY, input_shape=(32, 32, 3), classes=3)
    rgb.save(tmp_path / "rgb.keras")
    with pytest.warns(UserWarning, match="4 input channels"):
        four = keras_regnet.build(TINY, input_shape=(32, 32, 4), classes=3, weights=str(tmp_path / "rgb.keras"))
    np.testing.assert_allclose(four.get_layer("stem_conv").kernel.numpy(),
                               adapt_input_kernel(rgb.get_layer("stem_conv").kernel.numpy(), 4), rtol=1e-6)
    np.testing.assert_array_equal(four.get_layer("predictions").kernel.numpy(),
                                  rgb.get_layer("predictions").kernel.numpy())
