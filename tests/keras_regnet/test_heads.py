"""keras-hub's RetinaNetObjectDetector and DeepLabV3ImageSegmenter on `RegNetBackbone`: a few `fit` steps on
generated shapes (squares brightened, discs darkened on noise; boxes and masks known) with the loss falling,
predict, and save/reload as `.keras` and as a keras-hub preset with equal outputs. 64 px, a tiny 4-stage
RegNetY; DeepLabV3 reads the dilated (output_stride=16) backbone's P4 and low-level P2."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
keras_hub = pytest.importorskip("keras_hub")

from keras_regnet import make_spec  # noqa: E402
from keras_regnet.hub import RegNetBackbone  # noqa: E402

SPEC = make_spec([1, 1, 1, 1], [8, 16, 24, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8, name="tiny4")
SIZE, COUNT = 64, 8


@pytest.fixture(scope="module")
def shapes():
    """(images, boxes yxyx [N, 1, 4], labels [N, 1], masks [N, H, W, 1]): class 0 squares, class 1 discs."""
    rng = np.random.default_rng(0)
    images = rng.normal(0.0, 0.3, (COUNT, SIZE, SIZE, 3)).astype("float32")
    boxes, labels = np.zeros((COUNT, 1, 4), "float32"), np.zeros((COUNT, 1), "int32")
    masks = np.zeros((COUNT, SIZE, SIZE, 1), "int32")
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(COUNT):
        cls, side = i % 2, int(rng.integers(16, 28))
        y0, x0 = (int(v) for v in rng.integers(0, SIZE - side, 2))
        if cls == 0:
            inside = (yy >= y0) & (yy < y0 + side) & (xx >= x0) & (xx < x0 + side)
        else:
            r = side / 2
            inside = (yy - y0 - r + 0.5) ** 2 + (xx - x0 - r + 0.5) ** 2 <= r * r
        images[i][inside] += 2.0 if cls == 0 else -2.0
        boxes[i, 0], labels[i, 0] = (y0, x0, y0 + side, x0 + side), cls
        masks[i, ..., 0][inside] = cls + 1
    return images, boxes, labels, masks


def _fit_losses(model, x, y, epochs):
    return model.fit(x, y, batch_size=4, epochs=epochs, verbose=0).history["loss"]


def _check_reloads(model, cls, x, tmp_path):
    """The `.keras` file and the keras-hub preset give the same outputs as `model`."""
    path = str(tmp_path / "model.keras")
    model.save(path)
    preset = str(tmp_path / "preset")
    model.save_to_preset(preset)
    expected = keras.tree.map_structure(np.asarray, model(x))
    for restored in (keras.saving.load_model(path), cls.from_preset(preset)):
        assert isinstance(restored, cls) and isinstance(restored.backbone.image_encoder, RegNetBackbone)
        keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(a, np.asarray(b), atol=1e-5),
                                 expected, restored(x))


@pytest.mark.slow  # ~40-80 s on 2 shared cores: keras-hub's heads trace and save twice
def test_retinanet_on_regnet_trains_predicts_and_reloads(shapes, tmp_path):
    images, boxes, labels, _ = shapes
    keras.utils.set_random_seed(0)
    encoder = RegNetBackbone(SPEC, image_shape=(SIZE, SIZE, 3))
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=5, use_p5=False,
                                                  image_shape=(SIZE, SIZE, 3))
    detector = keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=2, bounding_box_format="yxyx",
                                                        pre_logits_num_conv_layers=1)
    detector.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    losses = _fit_losses(detector, images, {"boxes": boxes, "labels": labels}, epochs=4)
    print("RetinaNet fit losses:", [round(v, 3) for v in losses])
    assert losses[-1] < 0.5 * losses[0]
    predicted = detector.predict(images[:2], verbose=0)
    assert predicted["boxes"].shape[:2] == (2, 100) and predicted["labels"].shape == (2, 100)
    _check_reloads(detector, keras_hub.models.RetinaNetObjectDetector, images[:2], tmp_path)


@pytest.mark.slow
def test_deeplabv3_on_dilated_regnet_trains_predicts_and_reloads(shapes, tmp_path):
    images, _, _, masks = shapes
    keras.utils.set_random_seed(0)
    encoder = RegNetBackbone(SPEC, image_shape=(SIZE, SIZE, 3), output_stride=16)
    assert sorted(encoder.pyramid_outputs) == ["P1", "P2", "P3", "P4"]  # the last stage at 1/16
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key="P4", upsampling_size=4, dilation_rates=[1, 2],
        low_level_feature_key="P2", projection_filters=16, image_shape=(SIZE, SIZE, 3))
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=3)
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = _fit_losses(segmenter, images, masks, epochs=4)
    print("DeepLabV3 fit losses:", [round(v, 3) for v in losses])
    assert losses[-1] < 0.7 * losses[0]
    assert segmenter.predict(images[:2], verbose=0).shape == (2, SIZE, SIZE, 3)
    _check_reloads(segmenter, keras_hub.models.DeepLabV3ImageSegmenter, images[:2], tmp_path)
