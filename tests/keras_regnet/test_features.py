"""Backbone features as keras-hub backbones expose them: `pyramid_outputs` P1..P5 on every built
model and `keras_regnet.feature_extractor(model)`, with a dense-prediction head trained on top."""

import keras
import numpy as np
import pytest

import keras_regnet
from keras_regnet.features import feature_extractor

SIZE = (64, 96)  # non-square; every side a multiple of 32


def _expected_shapes(spec, height, width):
    """P1 (stem, stride 2) and P2..P5 (the stages, strides 4..32): shapes from the spec alone."""
    widths = [spec.stem_width] + spec.widths
    return {f"P{level}": (None, height // 2 ** level, width // 2 ** level, widths[level - 1])
            for level in range(1, 6)}


def _check_shapes(name):
    model = getattr(keras_regnet, keras_regnet.get_entry(name).function_name)(
        include_top=False, input_shape=(*SIZE, 3))
    got = {k: tuple(v.shape) for k, v in model.pyramid_outputs.items()}
    assert got == _expected_shapes(keras_regnet.get_entry(name).spec(), *SIZE), name
    assert model.pyramid_outputs["P5"] is model.output  # P5 is include_top=False's output


@pytest.mark.parametrize("name", ["regnetx_200mf", "regnety_600mf"])
def test_pyramid_shapes_at_a_non_square_size(name):
    _check_shapes(name)


@pytest.mark.slow
def test_pyramid_shapes_of_all_24_zoo_models():
    for name in keras_regnet.list_models(beyond_paper=False):
        _check_shapes(name)


def test_feature_extractor_p5_equals_the_headless_output_with_weights_and_preprocessing(tmp_path):
    spec = keras_regnet.make_spec([1, 1, 2, 1], [16, 24, 48, 64], group_widths=8, block="y",
                                  se_ratio=0.25, stem_width=8, name="tiny")
    full = keras_regnet.build(spec, classes=5)
    full.save(tmp_path / "full.keras")
    headless = keras_regnet.build(spec, include_top=False, weights=str(tmp_path / "full.keras"))
    extractor = keras_regnet.feature_extractor(headless)
    assert isinstance(extractor, keras.Model) and sorted(extractor.output) == ["P1", "P2", "P3", "P4", "P5"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype("float32")
    features = extractor(x)
    np.testing.assert_allclose(np.asarray(features["P5"]), np.asarray(headless(x)), atol=1e-5)
    assert tuple(features["P1"].shape) == (2, 32, 48, 8) and tuple(features["P3"].shape) == (2, 8, 12, 24)
    # The same from a model loaded from a .keras file (no pyramid_outputs attribute saved).
    loaded = keras.saving.load_model(tmp_path / "full.keras")
    from_file = feature_extractor(loaded)
    for level, value in from_file(x).items():
        np.testing.assert_allclose(np.asarray(value), np.asarray(features[level]), atol=1e-5)


def test_levels_are_log2_of_the_stride():
    """A stride-1 stem gives P0; a stride-1 stage shares its level with the stage before (deeper wins)."""
    spec = keras_regnet.make_spec([1, 1, 1], [16, 24, 32], group_widths=8, block="x", strides=[2, 1, 2],
                                  stem_width=8, stem_stride=1, name="odd")
    model = keras_regnet.build(spec, include_top=False, input_shape=(32, 32, 3))
    assert {k: tuple(v.shape) for k, v in model.pyramid_outputs.items()} == {
        "P0": (None, 32, 32, 8), "P1": (None, 16, 16, 24), "P2": (None, 8, 8, 32)}
    assert model.pyramid_outputs["P1"] is model.get_layer("s2_b1_relu").output
    with pytest.raises(ValueError, match="not a keras_regnet model"):
        feature_extractor(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_one_train_step_of_a_feature_pyramid_segmentation_head():
    """A small FPN (P3..P5 laterals, top-down sum, per-pixel classes) trains on the backbone's maps."""
    spec = keras_regnet.make_spec([1, 1, 1, 1], [16, 24, 32, 48], group_widths=8, block="x",
                                  stem_width=8, name="fpn_backbone")
    backbone = keras_regnet.build(spec, include_top=False, input_shape=(64, 64, 3))
    features = feature_extractor(backbone)
    inputs = keras.Input((64, 64, 3))
    maps = features(inputs)
    x = keras.layers.Conv2D(16, 1, name="lat5")(maps["P5"])
    for level in (4, 3):
        x = keras.layers.UpSampling2D(2)(x)
        x = keras.layers.Add()([x, keras.layers.Conv2D(16, 1, name=f"lat{level}")(maps[f"P{level}"])])
    x = keras.layers.Conv2D(3, 3, padding="same", name="classes")(x)
    logits = keras.layers.UpSampling2D(8, interpolation="bilinear")(x)
    segmenter = keras.Model(inputs, logits)
    segmenter.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    masks = rng.integers(0, 3, (4, 64, 64)).astype("int32")
    before = segmenter.get_layer("lat3").kernel.numpy().copy(), backbone.get_layer("stem_conv").kernel.numpy().copy()
    history = segmenter.fit(images, masks, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(segmenter.get_layer("lat3").kernel.numpy(), before[0])
    assert not np.allclose(backbone.get_layer("stem_conv").kernel.numpy(), before[1])  # gradients reach the stem
