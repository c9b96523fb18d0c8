"""One resolver for every model argument, used by training, evaluation, conversion and export."""

import pytest

from keras_regnet import get_entry, make_spec, resolve_model, resolve_spec
from keras_regnet.resolve import BUILTIN

SPEC = make_spec([1, 2], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8, name="mine")


@pytest.mark.parametrize("name", ["regnety_1.6gf", "RegNetY-1.6GF", "RegNetY1_6GF", "regnety_1_6gf",
                                  "RegNetY016", "regnety_016", " regnety_1.6gf "])
def test_zoo_names_in_every_spelling_and_keras2_aliases(name):
    spec, entry = resolve_model(name)
    assert spec == get_entry("regnety_1.6gf").spec() and entry.name == "regnety_1.6gf"


def test_builtins_files_in_any_case_inline_json_dicts_and_specs(tmp_path, monkeypatch):
    assert resolve_spec("regnety_digits") == BUILTIN["regnety_digits"].to_spec(name="regnety_digits")
    monkeypatch.chdir(tmp_path)
    for file_name in ("net.json", "Net.JSON", "NET.Json"):
        (tmp_path / file_name).write_text(SPEC.to_json())
        assert resolve_model(file_name) == (SPEC, None)
    assert resolve_spec(str(tmp_path / "Net.JSON")) == SPEC
    assert resolve_spec(SPEC.to_json()) == SPEC
    assert resolve_spec(SPEC.to_dict()) == SPEC
    assert resolve_spec(SPEC) == SPEC


@pytest.mark.parametrize("value, message", [
    ("regnetz_600mf", r"--model='regnetz_600mf' is unknown; use a zoo name \(regnetx_200mf"),
    ("missing.JSON", "no such JSON spec file"),
    ('{"stages": [', "not a valid NetSpec JSON"),
    ("[1, 2]", "unknown"),
    ("", "must be a zoo name"),
    (3, "must be a zoo name"),
])
def test_errors_name_the_argument_and_the_value(value, message):
    with pytest.raises(ValueError, match=message):
        resolve_model(value, label="--model")


def test_the_converter_takes_a_json_file_in_any_case(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from keras_regnet import build
    from keras_regnet.checkpoint_converter import convert_checkpoint
    from keras_regnet.pretrained.assign import layer_arrays

    spec = make_spec([1], [16], group_widths=8, block="x", stem_width=8, name="tiny_x")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Tiny.JSON").write_text(spec.to_json())
    model = build(spec, input_shape=(32, 32, 3), classes=5, include_preprocessing=False)
    state = {}
    from keras_regnet.checkpoint_converter import layer_map

    arrays = layer_arrays(model)
    for entry in layer_map(spec, "pycls"):
        for key, value in zip(entry.keys(), arrays[entry.layer]):
            value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T if value.ndim == 2 else value
            state[key] = value.copy()
    save_file(state, str(tmp_path / "tiny.safetensors"))
    out = convert_checkpoint("Tiny.JSON", tmp_path / "tiny.safetensors", tmp_path / "tiny.weights.h5",
                             bgr_to_rgb=False)
    assert out.endswith("tiny.weights.h5")
