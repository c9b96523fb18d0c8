"""Fine-tuning: --weights / --freeze in the config, the CLI and training.api, on folder data."""

import json
import os

import keras
import numpy as np
import pytest

from tests.helpers import prefetch
from tests.helpers.standin import make_image_folder
from training.core import config as C
from training.core.finetune import FINETUNE_EPOCHS, finetune_lr, frozen_layers, parse_freeze
from tests.helpers.paths import REPO_ROOT

FAST = dict(strategy="one_device", xla="off", mixed_precision="off", verbose=0)


def test_weights_switch_the_unset_fields_to_the_finetuning_recipe(tmp_path):
    weights = tmp_path / "m.keras"
    weights.write_bytes(b"")
    scratch = C.resolve(C.TrainConfig(dataset="folder", data_dir=str(tmp_path)))
    tuned = C.resolve(C.TrainConfig(dataset="folder", data_dir=str(tmp_path), weights=str(weights)))
    assert (scratch.epochs, scratch.lr) == (30, 0.05)
    assert tuned.epochs == FINETUNE_EPOCHS and tuned.lr == finetune_lr(64) == finetune_lr(512) == 0.003
    assert tuned.warmup_epochs == pytest.approx(0.1 * FINETUNE_EPOCHS)
    mine = C.resolve(C.TrainConfig(dataset="folder", data_dir=str(tmp_path), weights="imagenet", epochs=4, lr=0.01))
    assert (mine.epochs, mine.lr, mine.warmup_epochs) == (4, 0.01, pytest.approx(0.4))


@pytest.mark.parametrize("changes, message", [
    (dict(weights="/no/such.keras"), "--weights='/no/such.keras' does not exist"),
    (dict(freeze="backbone"), "--freeze=backbone needs --weights"),
    (dict(weights="imagenet", freeze="stem,head"), "--freeze='stem,head': 'head' is not allowed"),
    (dict(val_fraction=1.5), r"--val_fraction must be in \(0, 1\)"),
    (dict(val_fraction=0.2), "--val_fraction is only used by --dataset=folder"),
])
def test_bad_finetuning_flags_name_the_flag(changes, message):
    with pytest.raises(ValueError, match=message):
        C.validate(C.TrainConfig(**changes))


def test_freeze_selects_layers_by_stage():
    from keras_regnet import get_entry
    from training.core.models import build_model

    spec = get_entry("regnetx_200mf").spec().replace(name="x")
    model = build_model(spec, 32, 3)
    assert parse_freeze("none") == () and parse_freeze(" Stem, S2 ,3") == ("stem", "s2_", "s3_")
    every = [layer.name for layer in model.layers if layer.weights]
    assert frozen_layers(model, "backbone") == every[:-1] and every[-1] == "predictions"
    stem_s1 = frozen_layers(model, "stem,1", num_stages=4)
    assert stem_s1[:2] == ["stem_conv", "stem_bn"] and all(n.startswith(("stem", "s1_")) for n in stem_s1)
    with pytest.raises(ValueError, match=r"'s5' is not allowed.*s1\.\.s4"):
        frozen_layers(model, "s5", num_stages=4)


def _arrays(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def test_frozen_backbone_and_bn_statistics_stay_bit_identical_and_the_head_learns(tmp_path, capsys):
    """Keras' transfer-learning rule: frozen BN runs in inference mode (statistics not updated); EMA on."""
    from training.api import train
    from keras_regnet import resolve_spec
    from training.core.models import build_model

    data = make_image_folder(tmp_path / "photos")
    source = build_model(resolve_spec("regnetx_digits"), 32, 3)
    for layer in source.layers:  # non-trivial BN statistics, so "unchanged" means something
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.25, "float32"))
    source.save(tmp_path / "source.keras")
    before = _arrays(source)
    run_dir = tmp_path / "run"
    result = train("regnetx_digits", dataset="folder", data_dir=str(data), weights=str(tmp_path / "source.keras"),
                   freeze="backbone", epochs=2, batch_size=8, lr=0.5, ema_decay=0.9, model_dir=str(run_dir),
                   val_fraction=0.25, seed=3, verbose=1)
    assert result["steps"] == 4
    assert "into every layer, the classifier included" in capsys.readouterr().out
    after = _arrays(keras.saving.load_model(run_dir / "model.keras"))
    for name, values in before.items():
        same = all(np.array_equal(a, b) for a, b in zip(values, after[name]))
        assert same == (name != "predictions"), name
    assert json.loads((run_dir / "class_names.json").read_text()) == ["class_0", "class_1", "class_2"]
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["val"]) == 6 and len(split["train"]) == 18  # 2 of 8 per class, seeded
    assert not {p for p, _ in split["val"]} & {p for p, _ in split["train"]}


def test_finetuning_from_a_run_directory_reinitialises_a_mismatched_head(tmp_path, capsys):
    """The CLI path: --weights=<earlier --model_dir> (10 digit classes) onto 3 folder classes."""
    from training.api import train
    from keras_regnet import resolve_spec
    from training.core.models import build_model

    data = make_image_folder(tmp_path / "photos")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    source = build_model(resolve_spec("regnetx_digits"), 32, 10)
    source.save(earlier / "model.keras")
    train("regnetx_digits", dataset="folder", data_dir=str(data), weights=str(earlier), freeze="stem,s1",
          epochs=1, batch_size=8, model_dir=str(tmp_path / "run"), verbose=1)
    out = capsys.readouterr().out
    assert "re-initialised the classifier 'predictions' for 3 classes" in out
    tuned = _arrays(keras.saving.load_model(tmp_path / "run" / "model.keras"))
    original = _arrays(source)
    assert all(np.array_equal(a, b) for a, b in zip(tuned["stem_conv"], original["stem_conv"]))
    assert all(np.array_equal(a, b) for a, b in zip(tuned["s1_b1_bn_a"], original["s1_b1_bn_a"]))
    assert not np.array_equal(tuned["s2_b1_conv_b"][0], original["s2_b1_conv_b"][0])  # not frozen
    assert tuned["predictions"][0].shape == (96, 3)


MIRRORED_RESUME = '''
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from training.core.config import TrainConfig
from keras_regnet import resolve_spec
from training.core.models import build_model
from training.run import run
source_path, model_dir = sys.argv[1], sys.argv[2]
source = build_model(resolve_spec("regnetx_digits"), 16, 10)
source.save(source_path)
cfg = TrainConfig(model="regnetx_digits", weights=source_path, freeze="backbone", strategy="mirrored",
                  xla="off", mixed_precision="off", image_size=16, batch_size=32, epochs=1, max_steps=2,
                  ema_decay=0.9, model_dir=model_dir, verbose=0)
first = run(cfg)
second = run(cfg.replace(max_steps=4))  # resumes from the step-2 checkpoint
tuned = keras.saving.load_model(model_dir + "/model.keras")
frozen_same = all(np.array_equal(a, b) for layer in source.layers if layer.weights and layer.name != "predictions"
                  for a, b in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()))
head_same = np.array_equal(source.get_layer("predictions").get_weights()[0],
                           tuned.get_layer("predictions").get_weights()[0])
print(json.dumps({"replicas": second["replicas"], "resumed_from": second["resumed_from_step"],
                  "steps": second["steps"], "frozen_same": frozen_same, "head_same": head_same,
                  "top1_err": second["top1_err"]}))
'''


@pytest.fixture(scope="module", autouse=True)
def mirrored_resume(request, tmp_path_factory):
    """The two-replica subprocess, started with the module (when its test is selected) beside the in-process tests."""
    import sys

    tmp_path = tmp_path_factory.mktemp("mirrored_resume")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    command = [sys.executable, "-c", MIRRORED_RESUME, str(tmp_path / "source.keras"), str(tmp_path / "run")]
    runs = prefetch.Prefetch(lambda _: prefetch.run(command, env=env, timeout=600), ["run"] if prefetch.selected(
        request, "test_mirrored_resumed_ema_finetuning_keeps_the_frozen_backbone") else [])
    yield lambda: runs.get("run")
    runs.close()


def test_mirrored_resumed_ema_finetuning_keeps_the_frozen_backbone(mirrored_resume):
    """Two replicas, EMA on, killed-and-resumed: the frozen backbone is still bit-identical."""
    out = mirrored_resume()
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["resumed_from"] == 2 and result["steps"] == 4
    assert result["frozen_same"] and not result["head_same"]
    assert 0.0 <= result["top1_err"] <= 100.0


def test_a_weights_file_with_another_head_fills_the_backbone(tmp_path):
    """A .weights.h5 of a 10-class model into a 3-class one: backbone loaded, head left as built."""
    from keras_regnet.pretrained.load import load_into
    from keras_regnet import resolve_spec
    from training.core.models import build_model

    spec = resolve_spec("regnetx_digits")
    source = build_model(spec, 16, 10)
    source.save_weights(tmp_path / "ten.weights.h5")
    target = build_model(spec, 16, 3)
    head = target.get_layer("predictions").get_weights()
    assert load_into(target, str(tmp_path / "ten.weights.h5"), spec, new_head=True) == ["predictions"]
    for a, b in zip(target.get_layer("s2_b1_conv_b").get_weights(), source.get_layer("s2_b1_conv_b").get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(target.get_layer("predictions").get_weights(), head):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="does not match model"):
        load_into(build_model(spec, 16, 3), str(tmp_path / "ten.weights.h5"), spec)  # not fine-tuning: strict


def test_evaluation_refuses_folder_classes_that_differ_from_the_models_class_names(tmp_path):
    from training.evaluate import evaluate
    from keras_regnet import resolve_spec
    from training.core.models import build_model

    data = make_image_folder(tmp_path / "photos")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    build_model(resolve_spec("regnetx_digits"), 32, 3).save(run_dir / "model.keras")
    (run_dir / "class_names.json").write_text('["class_1", "class_0", "class_2"]')
    cfg = C.TrainConfig(model="regnetx_digits", dataset="folder", data_dir=str(data), batch_size=8, image_size=32,
                        **FAST)
    with pytest.raises(ValueError, match=r"--data_dir=.* has the classes \['class_0', 'class_1', 'class_2'\] "
                                         r"but the model was trained on \['class_1', 'class_0', 'class_2'\]"):
        evaluate("regnetx_digits", str(run_dir), cfg)
    (run_dir / "class_names.json").write_text('["class_0", "class_1", "class_2"]')
    result = evaluate("regnetx_digits", str(run_dir), cfg)
    assert result["class_names"] == ["class_0", "class_1", "class_2"] and result["examples"] == 3
