"""keras-hub: presets written by keras_regnet.hub load through keras-hub's own API with the same
logits; timm's Hub checkpoints (a local stand-in here) load through the safetensors converter."""

import json
import os

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from keras_regnet import build, preprocess_input  # noqa: E402
from keras_regnet.pretrained.eval_crop import scale_and_center_crop, scale_size  # noqa: E402
from keras_regnet.hub import RegNetBackbone, RegNetImageClassifier, save_preset  # noqa: E402
from keras_regnet.resolve import BUILTIN  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A regnety_digits model (head scaled so logits are far from zero) and its preset directory."""
    import keras

    keras.utils.set_random_seed(0)
    spec = BUILTIN["regnety_digits"].to_spec(name="regnety_digits")
    model = build(spec, input_shape=(None, None, 3), classes=10, classifier_activation=None)
    head = model.get_layer("predictions")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 200.0, bias + np.linspace(-1, 1, 10, dtype=np.float32)])
    directory = str(tmp_path_factory.mktemp("hub") / "preset")
    save_preset(model, directory, spec=spec, image_size=SIZE)
    return model, directory


def _raw_images(n=4, side=scale_size(SIZE), seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, side, side, 3)).astype(np.float32)


def _relative_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_preset_has_keras_hubs_files(saved):
    _, directory = saved
    assert {"config.json", "model.weights.h5", "metadata.json", "preprocessor.json", "task.json",
            "image_converter.json"} <= set(os.listdir(directory))
    config = json.load(open(os.path.join(directory, "config.json")))
    assert config["registered_name"] == "keras_regnet>RegNetBackbone"
    assert config["config"]["spec"]["name"] == "regnety_digits" and config["config"]["spec"]["stages"]


def test_keras_hub_loads_the_preset_with_the_same_logits(saved):
    model, directory = saved
    raw = _raw_images()
    cropped = np.stack([scale_and_center_crop(image, SIZE).numpy() for image in raw])
    want = model(cropped).numpy()
    assert np.abs(want).max() > 1.0
    classifier = keras_hub.models.ImageClassifier.from_preset(directory)
    assert isinstance(classifier, RegNetImageClassifier)
    assert classifier.preprocessor.image_converter.crop_fraction == 0.875
    assert _relative_error(classifier.predict(raw, verbose=0), want) < 1e-5  # converter: crop, resize, normalise
    backbone = keras_hub.models.Backbone.from_preset(directory)
    assert isinstance(backbone, RegNetBackbone) and sorted(backbone.pyramid_outputs) == ["P0", "P1", "P2", "P3"]
    import keras

    body = keras.Model(model.input, model.layers[-2].input)  # the last stage, before the pool and head
    np.testing.assert_allclose(backbone(preprocess_input(cropped)).numpy(), body(cropped).numpy(), rtol=1e-5, atol=1e-5)


def test_fit_trains_the_classifier_for_one_step(saved):
    _, directory = saved
    classifier = keras_hub.models.ImageClassifier.from_preset(directory)
    before = [w.copy() for w in classifier.get_layer("predictions").get_weights()]
    history = classifier.fit(_raw_images(8, seed=2), np.arange(8) % 10, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = classifier.get_layer("predictions").get_weights()
    assert np.abs(after[0] - before[0]).max() > 0


def _timm_standin(directory, tag="pycls_in1k", **cfg):
    """config.json + model.safetensors as on hf://timm/regnetx_002.<tag>: the golden case's weights."""
    from safetensors.numpy import save_file

    from tests.helpers.standin import eq

    meta, arrays = eq.load_case("regnetx_200mf")
    state = eq.to_timm(eq.reference_state(meta, arrays))
    os.makedirs(directory, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, os.path.join(directory, "model.safetensors"))
    pretrained_cfg = {"tag": tag, "input_size": [3, 224, 224], "crop_pct": 0.875, "interpolation": "bicubic",
                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], **cfg}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"architecture": "regnetx_002", "num_classes": 1000, "pretrained_cfg": pretrained_cfg}, f)
    return os.path.join(directory, "model.safetensors")


def test_timm_checkpoint_loads_as_keras_regnet_loads_it(tmp_path):
    from keras_regnet import RegNetX200MF

    path = _timm_standin(str(tmp_path / "regnetx_002.pycls_in1k"))
    classifier = RegNetImageClassifier.from_preset(str(tmp_path / "regnetx_002.pycls_in1k"))
    reference = RegNetX200MF(weights=path, classifier_activation=None, input_shape=(64, 64, 3))
    raw = _raw_images(2, side=64)
    want = reference(raw).numpy()
    got = classifier(preprocess_input(raw)).numpy()  # the task without its preprocessor: normalised input
    assert _relative_error(got, want) < 1e-5
    converter = classifier.preprocessor.image_converter
    assert converter.interpolation == "bilinear"  # our table's setting for pycls weights, not timm's bicubic
    assert converter.image_size == (224, 224) and converter.crop_fraction == 0.875
    backbone = RegNetBackbone.from_preset(str(tmp_path / "regnetx_002.pycls_in1k"))
    assert isinstance(backbone, RegNetBackbone) and backbone.output_shape[-1] == 368


def test_other_timm_tags_bring_their_own_eval_settings(tmp_path):
    _timm_standin(str(tmp_path / "other"), tag="ra_in1k", crop_pct=0.95, input_size=[3, 256, 256])
    classifier = RegNetImageClassifier.from_preset(str(tmp_path / "other"), load_weights=False)
    converter = classifier.preprocessor.image_converter
    assert (converter.interpolation, converter.crop_fraction, converter.image_size) == ("bicubic", 0.95, (256, 256))


def test_a_timm_architecture_outside_the_zoo_is_named(tmp_path):
    directory = tmp_path / "z"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"architecture": "regnetz_040", "num_classes": 1000}))
    with pytest.raises(ValueError, match="timm architecture 'regnetz_040' is not a zoo RegNet"):
        RegNetImageClassifier.from_preset(str(directory))


def test_the_converter_cli_writes_a_preset_keras_hub_loads(tmp_path):
    import subprocess
    import sys

    from keras_regnet import RegNetX200MF

    path = _timm_standin(str(tmp_path / "timm"))
    preset = str(tmp_path / "preset")
    run = subprocess.run([sys.executable, "-m", "keras_regnet.convert", "--model=regnetx_002.pycls_in1k",
                          f"--checkpoint={path}", f"--to_preset={preset}"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"wrote keras-hub preset {preset}" in run.stdout
    classifier = keras_hub.models.ImageClassifier.from_preset(preset)
    reference = RegNetX200MF(weights=path, classifier_activation=None, input_shape=(64, 64, 3))
    raw = _raw_images(2, side=64)
    assert _relative_error(classifier(preprocess_input(raw)).numpy(), reference(raw).numpy()) < 1e-5
    assert classifier.preprocessor.image_converter.interpolation == "bilinear"
