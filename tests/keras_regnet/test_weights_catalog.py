"""Every published same-architecture weight as a presets row, one resolver for all its spellings, its eval
settings driving evaluation, non-1000-class heads, licences logged once, the weights table.

Facts are transcribed from timm/models/regnet.py (`default_cfgs`: `_cfg` apache-2.0 224 px crop 0.95,
`_cfgtv2` bsd-3-clause crop 0.965, SWAG cc-by-nc-4.0 384 px crop 1.0 for `swag_ft_in1k`, SEER
'seer-license'; `sw_in12k` 11821 classes; `seer` num_classes=0) and timm's results-imagenet.csv."""

import dataclasses
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_regnet import get_entry, resolve_model
from keras_regnet.presets import PRESETS
from keras_regnet.pretrained.tags import canonical_weights, eval_settings, presets_of, tags
from tests.golden import equivalence as eq
from tests.helpers.paths import REPO_ROOT

# tag: (licence, input size, crop fraction, rows) as timm's default_cfgs give them
FAMILIES = {
    "ra_in1k": ("apache-2.0", 224, 0.95, 1), "ra3_in1k": ("apache-2.0", 224, 0.95, 3),
    "sw_in12k_ft_in1k": ("apache-2.0", 224, 0.95, 2), "lion_in12k_ft_in1k": ("apache-2.0", 224, 0.95, 1),
    "sw_in12k": ("apache-2.0", 224, 0.95, 2), "deit_in1k": ("apache-2.0", 224, 0.95, 1),
    "tv2_in1k": ("bsd-3-clause", 224, 0.965, 14), "swag_ft_in1k": ("cc-by-nc-4.0", 384, 1.0, 3),
    "swag_lc_in1k": ("cc-by-nc-4.0", 224, 0.965, 3), "seer_ft_in1k": ("seer-license", 384, 1.0, 4),
    "seer": ("seer-license", 224, 0.965, 3), "pycls_in1k": ("mit", 224, 0.875, 24),
}


def test_every_tag_family_has_timms_licence_size_crop_and_row_count():
    assert set(tags()) == set(FAMILIES)
    for tag, (licence, size, crop, count) in FAMILIES.items():
        rows = [row for row in PRESETS.values() if row.tag == tag]
        assert len(rows) == count, tag
        assert {(r.licence, r.input_size, r.crop_fraction) for r in rows} == {(licence, size, crop)}, tag
        assert all(r.hf_repo == f"timm/{r.name}" and r.filename == "model.safetensors" for r in rows)
    assert len(PRESETS) == 61
    assert {r.num_classes for r in PRESETS.values() if r.tag == "sw_in12k"} == {11821}
    assert all(r.headless for r in PRESETS.values() if r.tag == "seer")


@pytest.mark.parametrize("name,top1,model", [
    ("regnety_040.ra3_in1k", 82.308, "regnety_4.0gf"), ("regnety_320.tv2_in1k", 83.17, "regnety_32gf"),
    ("regnety_120.sw_in12k_ft_in1k", 84.994, "regnety_12gf"), ("regnety_1280.swag_ft_in1k", 88.228, "regnety_128gf"),
    ("regnety_2560.seer_ft_in1k", 85.144, "regnety_256gf"), ("regnety_080_tv.tv2_in1k", 82.58, "regnety_8.0gf_tv"),
])
def test_the_issues_figures(name, top1, model):
    assert PRESETS[name].top1 == top1 and get_entry(PRESETS[name].arch).name == model


def test_torchvision_origin_files_carry_their_published_hash_prefix():
    rows = [row for row in PRESETS.values() if row.tag in ("tv2_in1k", "swag_ft_in1k", "swag_lc_in1k")]
    assert len(rows) == 20
    for row in rows:
        assert row.origin_url.startswith("https://download.pytorch.org/models/regnet_")
        assert len(row.origin_url.rsplit("-", 1)[1]) == len("62229a5f.pth")
    assert PRESETS["regnetx_004_tv.tv2_in1k"].origin_url.endswith("/regnet_x_400mf-62229a5f.pth")


def test_one_resolver_for_every_spelling():
    spec16 = get_entry("RegNetY16GF").spec()
    for spelling in ("swag_ft_in1k", "regnety_160.swag_ft_in1k", "hf://timm/regnety_160.swag_ft_in1k",
                     "timm/regnety_160.swag_ft_in1k"):
        assert canonical_weights(spelling, spec16) == "regnety_160.swag_ft_in1k", spelling
    assert canonical_weights("imagenet", spec16) == "imagenet"  # imagenet stays pycls's
    spec, entry = resolve_model("regnety_160.swag_ft_in1k", label="--model")
    assert entry.name == "regnety_16gf" and spec == spec16
    assert resolve_model("hf://timm/regnety_1280.seer")[1].name == "regnety_128gf"
    assert canonical_weights("tv2_in1k", get_entry("regnety_800mf_tv").spec()) == "regnety_008_tv.tv2_in1k"
    with pytest.raises(ValueError, match="no weights tagged 'tv2_in1k' for RegNetY-800MF; tags it has: pycls_in1k"):
        canonical_weights("tv2_in1k", get_entry("regnety_800mf").spec())
    assert [r.tag for r in presets_of(get_entry("regnety_16gf"))] == [
        "pycls_in1k", "sw_in12k_ft_in1k", "lion_in12k_ft_in1k", "sw_in12k", "deit_in1k", "tv2_in1k",
        "swag_ft_in1k", "swag_lc_in1k"]


def test_a_tags_eval_settings_drive_evaluation():
    from training.evaluate import EvalConfig

    swag = eval_settings("regnety_160.swag_ft_in1k")
    assert (swag.input_size, swag.scale_size(), swag.interpolation) == (384, 384, "bicubic")
    assert eval_settings("regnety_16gf", "swag_ft_in1k").input_size == 384  # a bare tag of the model
    assert EvalConfig(model="RegNetY-16GF", weights="swag_ft_in1k").train_config().image_size == 384
    assert eval_settings(weights="regnety_160.swag_ft_in1k").input_size == 384
    assert EvalConfig(model="regnety_160.swag_ft_in1k").train_config().image_size == 384
    assert EvalConfig(model="regnety_16gf", weights="regnety_160.swag_ft_in1k").train_config().image_size == 384
    assert EvalConfig(model="regnety_16gf").train_config().image_size == 224
    assert eval_settings("regnetx_004_tv.tv2_in1k").scale_size() == 232  # torchvision's resize_size


# Runtime rows on RegNetX-200MF (the golden case's weights) stand in for the big models' files.
def _row(tag, **changes):
    base = PRESETS["regnetx_002.pycls_in1k"]
    return dataclasses.replace(base, tag=tag, hf_repo=f"timm/regnetx_002.{tag}", sha256=None, **changes)


def _place(row, keras_home, head=None):
    """The golden case's timm-naming weights where the loader looks first, head changed as asked."""
    from safetensors.numpy import save_file

    from keras_regnet.pretrained.cache import cached_paths

    meta, arrays = eq.load_case("regnetx_200mf")
    state = eq.to_timm(eq.reference_state(meta, arrays))
    if head == "none":
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    elif head is not None:
        rng = np.random.default_rng(0)
        state["head.fc.weight"] = rng.normal(0, 0.05, (head, state["head.fc.weight"].shape[1])).astype("float32")
        state["head.fc.bias"] = np.zeros(head, "float32")
    raw, _ = cached_paths(row)
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, raw)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home"


def test_a_non_permissive_licence_is_logged_once_with_its_source(keras_home, monkeypatch, caplog):
    from keras_regnet import RegNetX200MF

    row = _row("nc_in1k", licence="cc-by-nc-4.0", origin_url="https://example.org/original.pth")
    monkeypatch.setitem(PRESETS, row.name, row)
    _place(row, keras_home)
    with caplog.at_level(logging.WARNING, logger="keras_regnet"):
        RegNetX200MF(weights="nc_in1k", input_shape=(32, 32, 3))
        RegNetX200MF(weights="regnetx_002.nc_in1k", input_shape=(32, 32, 3))
    lines = [r.getMessage() for r in caplog.records if "licensed" in r.getMessage()]
    assert lines == ["regnetx_002.nc_in1k weights are licensed cc-by-nc-4.0 (not a permissive licence; see "
                     "https://huggingface.co/timm/regnetx_002.nc_in1k and https://example.org/original.pth): "
                     "check the terms before use"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keras_regnet"):
        row2 = _row("ok_in1k", licence="apache-2.0")
        monkeypatch.setitem(PRESETS, row2.name, row2)
        _place(row2, keras_home)
        RegNetX200MF(weights="ok_in1k", input_shape=(32, 32, 3))
    assert not [r for r in caplog.records if "licensed" in r.getMessage()]


def test_a_headless_weight_builds_headless_and_says_so(keras_home, monkeypatch, caplog):
    from keras_regnet import RegNetX200MF

    row = _row("trunk", num_classes=0, top1=None, top5=None)
    monkeypatch.setitem(PRESETS, row.name, row)
    _place(row, keras_home, head="none")
    with caplog.at_level(logging.WARNING, logger="keras_regnet"):
        model = RegNetX200MF(weights="regnetx_002.trunk", input_shape=(64, 64, 3))
    assert "predictions" not in [layer.name for layer in model.layers] and model.output_shape == (None, 2, 2, 368)
    assert any("published without a classifier: built headless" in r.getMessage() for r in caplog.records)
    reference = RegNetX200MF(weights=None, include_top=False, input_shape=(64, 64, 3))
    assert reference.output_shape == model.output_shape


def test_an_in12k_weight_builds_its_own_head_and_says_so(keras_home, monkeypatch, caplog):
    from keras_regnet import RegNetX200MF

    row = _row("sw_in7", num_classes=7, top1=None, top5=None)
    monkeypatch.setitem(PRESETS, row.name, row)
    _place(row, keras_home, head=7)
    with caplog.at_level(logging.WARNING, logger="keras_regnet"):
        model = RegNetX200MF(weights="sw_in7", input_shape=(32, 32, 3))
    assert model.output_shape == (None, 7)
    assert any("has a 7-class classifier: built with its own 7-class head" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="hold a 7-class classifier; with `include_top=True`, `classes` should be 7"):
        RegNetX200MF(weights="sw_in7", classes=5, input_shape=(32, 32, 3))


def test_offline_message_names_the_exact_file(keras_home, monkeypatch):
    import socket

    from keras_regnet.pretrained.cache import preset_arrays

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ValueError) as info:
        preset_arrays(PRESETS["regnety_1280.swag_ft_in1k"], progress=False)
    message = str(info.value)
    assert f"Download http://127.0.0.1:{port}/timm/regnety_1280.swag_ft_in1k/resolve/main/model.safetensors" in message
    assert str(keras_home / "models" / "keras_regnet_regnety_128gf_swag_ft_in1k.safetensors") in message
    assert "https://download.pytorch.org/models/regnet_y_128gf_swag-c8ce3e52.pth" in message


def test_the_cli_prints_the_weights_table_with_licences():
    out = subprocess.run([sys.executable, "-m", "keras_regnet"], capture_output=True, text=True, check=True,
                         cwd=REPO_ROOT).stdout
    table = out[out.index("| weights | model | licence"):]
    rows = [line for line in table.splitlines() if line.startswith("| regnet")]
    assert len(rows) == len(PRESETS)
    assert "| regnety_1280.swag_ft_in1k | RegNetY-128GF | cc-by-nc-4.0 ! | 88.23 | 384 | 1.0 | bicubic | 1000 |" in rows
    assert "| regnety_320.seer | RegNetY-32GF | seer-license ! | - | 224 | 0.965 | bicubic | headless |" in rows
    assert "| regnety_040.ra3_in1k | RegNetY-4.0GF | apache-2.0 | 82.31 | 224 | 0.95 | bicubic | 1000 |" in rows


def test_a_tags_eval_size_is_the_exports_default_input_size():
    from tflite.export_run import ExportConfig, export_spec

    assert ExportConfig(model="regnety_160.swag_ft_in1k").with_image_size().image_size == 384
    assert ExportConfig(model="regnety_16gf", weights="swag_ft_in1k").with_image_size().image_size == 384
    assert ExportConfig(model="regnety_16gf", weights="imagenet").with_image_size().image_size == 224
    assert ExportConfig(model="regnety_16gf", weights="swag_ft_in1k", image_size=64).with_image_size().image_size == 64
    with pytest.raises(ValueError, match="--image_size=16 is below the network's total stride 32"):
        export_spec(ExportConfig(model="regnety_16gf", image_size=16))
