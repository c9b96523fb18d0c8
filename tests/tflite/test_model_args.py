"""--model / --weights resolution: zoo names, spec JSON, checkpoint files and training model_dirs."""

import os
import time

import numpy as np
import pytest

from keras_regnet import build, make_spec
from tflite.export_run import ExportConfig, export_spec
from tflite.model_args import checkpoint_classes, class_names, load_float_model, resolve_weights

SPEC = make_spec([1], [16], group_widths=8, block="x", stem_width=8, name="tiny_x")


def resolve_spec(model: str):
    """The export's --model door (tflite.export_run.export_spec)."""
    return export_spec(ExportConfig(model=model, image_size=32))


def test_resolve_spec_accepts_zoo_names_inline_json_and_files(tmp_path):
    assert resolve_spec("RegNetY-600MF").name == "regnety_600mf"
    assert resolve_spec(SPEC.to_json()) == SPEC
    (tmp_path / "s.json").write_text(SPEC.to_json())
    assert resolve_spec(str(tmp_path / "s.json")) == SPEC


def test_an_image_size_below_the_network_stride_is_refused():
    with pytest.raises(ValueError, match="--image_size=16 is below the network's total stride 32"):
        export_spec(ExportConfig(model="regnetx_200mf", image_size=16))


@pytest.mark.parametrize("value, message", [
    ("regnetz_600mf", "--model='regnetz_600mf' is unknown"),
    ("/no/such/spec.json", "no such NetSpec JSON file"),
    ('{"stages": []}', "not a valid NetSpec"),
])
def test_resolve_spec_errors_name_the_flag(value, message):
    with pytest.raises(ValueError, match=message):
        resolve_spec(value)


def test_model_dir_resolves_to_its_newest_keras_file_before_any_weights_file_never_below(tmp_path):
    from keras_regnet.pretrained.load import run_directory_weights

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt-3.index").write_bytes(b"")
    (tmp_path / "old.keras").write_bytes(b"")
    time.sleep(0.01)
    (tmp_path / "new.keras").write_bytes(b"")
    (tmp_path / "checkpoints" / "newer.keras").write_bytes(b"")  # below the run directory: never picked
    (tmp_path / "newest.weights.h5").write_bytes(b"")
    (tmp_path / ".tmp-model.keras").write_bytes(b"")  # a partial write is never picked
    assert run_directory_weights(str(tmp_path)) == str(tmp_path / "new.keras")
    (tmp_path / "model.keras").write_bytes(b"")  # training's own file wins over newer ones
    time.sleep(0.01)
    (tmp_path / "newer.keras").write_bytes(b"")
    assert run_directory_weights(str(tmp_path)) == str(tmp_path / "model.keras")
    for name in ("old.keras", "new.keras", "newer.keras", "model.keras"):
        os.remove(tmp_path / name)
    assert run_directory_weights(str(tmp_path)) == str(tmp_path / "newest.weights.h5")


def test_directory_without_checkpoints_and_wrong_suffix_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"without any \*\.keras or \*\.weights\.h5"):
        resolve_weights(str(tmp_path))
    (tmp_path / "model.txt").write_bytes(b"")  # (.pt is a torch reference checkpoint now)
    with pytest.raises(ValueError, match="expected a file ending in .keras or .weights.h5"):
        resolve_weights(str(tmp_path / "model.txt"))


def test_weights_h5_gives_its_classes_and_loads(tmp_path):
    model = build(SPEC, input_shape=(None, None, 3), classes=7, classifier_activation=None)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    assert checkpoint_classes(path) == 7
    loaded, resolved = load_float_model(SPEC, path)
    assert resolved == path
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_mismatched_weights_file_names_file_and_model(tmp_path):
    model = build(SPEC, input_shape=(None, None, 3), classes=7)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    other = make_spec([1], [24], group_widths=8, block="x", stem_width=8, name="wider")
    with pytest.raises(ValueError, match=r"checkpoint '.*m.weights.h5' does not match the expected model 'wider'"):
        load_float_model(other, path)


def test_imagenet_and_reference_checkpoints_export_with_class_names(tmp_path, monkeypatch):
    """--weights=imagenet (a local stand-in here) gives 1000 classes named as ImageNet's."""
    from keras_regnet import get_entry
    from tests.helpers.standin import place_imagenet_standin
    from tflite.export_run import top_k_examples
    from tflite.model_args import class_names

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    raw = place_imagenet_standin(tmp_path / "keras_home")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    spec = get_entry("regnetx_200mf").spec()
    model, path = load_float_model(spec, "imagenet")
    assert path == "imagenet" and model.output_shape == (None, 1000)
    names = class_names(path, 1000)
    assert names[0] == "tench" and len(names) == 1000
    probs = np.eye(1000, dtype="float32")[[1]]
    assert top_k_examples(probs, names, 2)[0][0] == ["goldfish", 1.0]
    # The same weights as a reference checkpoint file: its classes come from head.fc.
    copy = tmp_path / "ref.safetensors"
    copy.write_bytes(open(raw, "rb").read())
    assert checkpoint_classes(str(copy)) == 1000
    from_file, _ = load_float_model(spec, str(copy))
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(from_file(x)), np.asarray(model(x)), atol=1e-5)


def test_class_names_beside_a_run_model(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"")
    assert class_names(str(tmp_path / "model.keras"), 3) is None
    (tmp_path / "class_names.json").write_text('["cat", "dog", "owl"]')
    assert class_names(str(tmp_path / "model.keras"), 3) == ["cat", "dog", "owl"]
    with pytest.raises(ValueError, match="lists 3 class names but the model has 4 classes"):
        class_names(str(tmp_path / "model.keras"), 4)
