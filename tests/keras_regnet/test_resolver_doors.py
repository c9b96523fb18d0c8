"""Every door that takes a model name resolves it through keras_regnet.resolve_model: the same names
give the same NetSpec and the same bad names the same one-line ConfigError, whichever door they use.

`keras_regnet.complexity("regnety_digits")` used to fail while `build` and the CLIs accepted it.
"""

import numpy as np
import pytest

import keras_regnet
from keras_regnet import make_spec
from keras_regnet.errors import ConfigError
from keras_regnet.resolve import BUILTIN
from keras_regnet.zoo import ZOO
from tests.helpers.paths import REPO_ROOT

SPEC = make_spec([1, 2], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8, name="mine")
X200 = ZOO["regnetx_200mf"].spec()
DIGITS = BUILTIN["regnety_digits"].to_spec(name="regnety_digits")

# name -> the spec it means, written out here rather than asked of the resolver under test.
NAMES = {
    "regnetx_200mf": X200,
    "RegNetX-200MF": X200,  # the paper's spelling
    "RegNetX200MF": X200,  # the builder function
    "regnetx_200MF": X200,
    "RegNetX002": X200,  # the Keras 2 alias
    "regnetx_002.pycls_in1k": X200,  # timm's tagged name
    "hf://timm/regnetx_002.pycls_in1k": X200,
    "regnety_digits": DIGITS,  # a built-in small model
    "<file>": SPEC,  # a NetSpec JSON file
    "<inline>": SPEC,  # inline NetSpec JSON
}


@pytest.fixture
def argument(tmp_path, monkeypatch):
    """The text a user types for a NAMES key; "<file>" is a bare Net.JSON in the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Net.JSON").write_text(SPEC.to_json())
    return lambda name: {"<file>": "Net.JSON", "<inline>": SPEC.to_json()}.get(name, name)


def _training(name):
    from training.config import TrainConfig
    from training.run import prepare

    return prepare(TrainConfig(model=name, image_size=32))[1]


def _export(name):
    from tflite.export_run import ExportConfig, export_spec

    return export_spec(ExportConfig(model=name, image_size=32))


def _latency(name):
    from design_lab.latency import zoo_population

    return zoo_population([name], 32, 10)[0].spec


def _evaluate(name):
    from training.config import TrainConfig
    from training.evaluate import evaluate

    return evaluate(name, None, TrainConfig(image_size=32))


def _convert(name):
    from keras_regnet.checkpoint_converter import converted_model

    return converted_model(name, "imagenet")[1]


# door -> (call returning the NetSpec it resolved, the argument name its errors use)
SPEC_DOORS = {
    "resolve_spec": (keras_regnet.resolve_spec, "model"),
    "training": (_training, "--model"),
    "export": (_export, "--model"),
    "latency --zoo": (_latency, "--zoo"),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("door", SPEC_DOORS)
def test_every_door_resolves_every_name_to_the_same_spec(door, name, argument):
    resolve, _ = SPEC_DOORS[door]
    assert resolve(argument(name)) == NAMES[name]


@pytest.mark.parametrize("name", NAMES)
def test_complexity_takes_every_name(name, argument):
    got = keras_regnet.complexity(argument(name), 64, classes=10)
    assert got == keras_regnet.complexity(NAMES[name], 64, classes=10)


@pytest.mark.parametrize("name", NAMES)
def test_build_takes_every_name(name, argument):
    from keras_regnet import layer_records

    expected = NAMES[name]
    model = keras_regnet.build(argument(name), input_shape=(32, 32, 3), classes=10)
    assert model.name == expected.name.replace(".", "_")
    assert {r.name for r in layer_records.network(expected, True, 10)} <= {layer.name for layer in model.layers}
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == keras_regnet.complexity(expected, 32, classes=10).params


ERROR_DOORS = {
    **SPEC_DOORS,
    "complexity": (keras_regnet.complexity, "spec"),
    "build": (keras_regnet.build, "spec"),
    "evaluate": (_evaluate, "--model"),
    "convert": (_convert, "model"),
}
BAD = ["regnetz_600mf", "regnety_006.ra_in1k", "missing.json", '{"stages": [', ""]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("door", ERROR_DOORS)
def test_a_bad_name_is_the_same_one_line_config_error_from_every_door(door, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # missing.json is missing
    call, label = ERROR_DOORS[door]
    with pytest.raises(ConfigError) as expected:
        keras_regnet.resolve_model(value, label=label)
    with pytest.raises(ConfigError) as got:
        call(value)
    assert str(got.value) == str(expected.value)
    assert "\n" not in str(got.value) and str(got.value).startswith(label)


@pytest.mark.parametrize("name", ["RegNetX002", "regnety_digits"])
def test_the_keras_hub_backbone_takes_a_name(name):
    pytest.importorskip("keras_hub")
    from keras_regnet.hub import RegNetBackbone

    assert RegNetBackbone(name, image_shape=(32, 32, 3)).spec == NAMES[name]
    with pytest.raises(ConfigError, match="^spec='regnetz_600mf' is unknown; use a zoo name"):
        RegNetBackbone("regnetz_600mf")


def test_the_converter_cli_says_the_resolvers_line_for_a_bad_model(tmp_path):
    import os
    import subprocess
    import sys

    root = str(REPO_ROOT)
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-m", "keras_regnet.convert", "--model=regnetz_600mf",
                          "--checkpoint=imagenet", f"--output={tmp_path / 'o.weights.h5'}"],
                         env=env, capture_output=True, text=True, timeout=300)
    with pytest.raises(ConfigError) as expected:
        keras_regnet.resolve_model("regnetz_600mf", label="--model")
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 2 and last.startswith(f"FATAL config error: {expected.value} (cause: "), last
