"""Every exported .tflite carries LiteRT metadata: MediaPipe's ImageClassifier loads it and agrees
with tflite.predict; the metadata reads back with the labels, sizes and normalisation written."""

import json
import os

import numpy as np
import pytest

from keras_regnet import build
from tflite import metadata
from tflite.export_run import ExportConfig, run_export

SIZE = 32
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """float32 and int8 exports of regnetx_digits from a weights file with class_names.json beside it.

    The classifier is a least-squares linear probe on the random features of 300 training digits, so
    predictions vary with the image and are decisive (no near-ties between top-1 and top-2).
    """
    import keras

    from tflite.calibration import load_images

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("meta")
    model = build(_digits_spec(), input_shape=(None, None, 3), classes=10, classifier_activation=None)
    train = load_images("digits:train", SIZE, limit=300)
    head = model.get_layer("predictions")
    features = keras.Model(model.inputs, head.input).predict(train.images, verbose=0).astype(np.float64)
    mean = features.mean(axis=0)
    kernel = np.linalg.lstsq(features - mean, np.eye(10)[train.labels] - 0.1, rcond=None)[0] * 20.0
    head.set_weights([kernel.astype(np.float32), (-mean @ kernel).astype(np.float32)])
    (root / "run").mkdir()
    model.save_weights(str(root / "run" / "model.weights.h5"))
    (root / "run" / "class_names.json").write_text(json.dumps(NAMES))
    out = root / "export"
    run_export(ExportConfig(model="regnetx_digits", weights=str(root / "run" / "model.weights.h5"),
                            output_dir=str(out), formats=("float32", "int8"), image_size=SIZE,
                            calibration_steps=20, eval_images=8, latency_runs=1))
    return out


def _digits_spec():
    from keras_regnet.resolve import BUILTIN

    return BUILTIN["regnetx_digits"].to_spec(name="regnetx_digits")


@pytest.mark.parametrize("fmt", ["float32", "int8"])
def test_exported_files_carry_metadata_labels_and_normalisation(export, fmt):
    data = (export / "tflite" / f"regnetx_digits_{fmt}.tflite").read_bytes()
    described = metadata.describe(data)
    assert described is not None, "no TFLITE_METADATA buffer"
    assert described["name"] == f"regnetx_digits ({fmt})" and "0-255" in described["description"]
    assert "shorter side 37, centre crop 32, bilinear" in described["description"]
    assert described["image_size"] == (SIZE, SIZE) and described["min_parser_version"] == "1.0.0"
    assert described["mean"] == [0.0] and described["std"] == [1.0]  # the model normalises itself
    assert described["label_file"] == "labels.txt" and described["labels"] == NAMES
    assert metadata.associated_files(data) == {"labels.txt": ("\n".join(NAMES) + "\n").encode()}


def test_metadata_changes_no_prediction(tmp_path):
    from tflite import to_tflite
    from tflite.report import tflite_predict

    model = build(_digits_spec(), input_shape=(None, None, 3), classes=3, classifier_activation=None)
    bare = to_tflite.convert_model(model, SIZE, "float32")
    info = metadata.classifier_info("m", "float32", SIZE, 3, None, "test")
    (tmp_path / "bare.tflite").write_bytes(bare)
    (tmp_path / "meta.tflite").write_bytes(metadata.populate(bare, info))
    x = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_array_equal(tflite_predict(str(tmp_path / "bare.tflite"), x),
                                  tflite_predict(str(tmp_path / "meta.tflite"), x))
    assert metadata.describe(bare) is None
    assert metadata.describe((tmp_path / "meta.tflite").read_bytes())["labels"] == ["0", "1", "2"]


def test_predict_takes_class_names_from_the_models_own_label_file(export, tmp_path):
    import shutil

    from tflite.predict import find_class_names

    alone = tmp_path / "alone.tflite"  # no class_names.json anywhere near it
    shutil.copy(export / "tflite" / "regnetx_digits_float32.tflite", alone)
    assert find_class_names(str(alone)) == NAMES


@pytest.mark.parametrize("fmt", ["float32", "int8"])
def test_mediapipe_image_classifier_agrees_with_tflite_predict(export, fmt, tmp_path):
    """MediaPipe refuses a float model without NormalizationOptions ("Input tensor has type float32:
    it requires specifying NormalizationOptions metadata"); ours loads and gives predict's top-1."""
    pytest.importorskip("mediapipe")
    import mediapipe as mp
    import tensorflow as tf
    from mediapipe.tasks.python import BaseOptions, vision
    from mediapipe.tasks.python.components.containers.rect import RectF

    from keras_regnet.pretrained.eval_crop import scale_size
    from tflite.calibration import load_images
    from tflite.predict import find_class_names, predict

    path = str(export / "tflite" / f"regnetx_digits_{fmt}.tflite")
    side = scale_size(SIZE)  # 37: predict resizes nothing and crops the central 32 x 32
    images = load_images("digits:test", side, limit=12).images
    files = []
    for i, image in enumerate(images):
        files.append(str(tmp_path / f"{i}.png"))
        tf.io.write_file(files[-1], tf.io.encode_png(np.round(image).astype(np.uint8)))
    ours = [top[0][0] for top in predict(path, files, top_k=1, names=find_class_names(path))]
    offset = (side - SIZE + 1) // 2
    crop = RectF(left=offset / side, top=offset / side, right=(offset + SIZE) / side, bottom=(offset + SIZE) / side)
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path), max_results=1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        theirs = [classifier.classify(mp.Image.create_from_file(f), vision.ImageProcessingOptions(region_of_interest=crop))
                  .classifications[0].categories[0].category_name for f in files]
    assert len(set(ours)) > 1  # the images are told apart, so agreement is not one repeated label
    assert theirs == ours
