"""The presets table: one row per weight, read by the zoo, the tag resolver, the loader and eval.

A row added to `PRESETS` (here at runtime) is found by every reader without touching another table.
"""

import dataclasses
import re

import numpy as np
import pytest

from keras_regnet import get_entry, list_models, resolve_model
from keras_regnet import presets
from keras_regnet.presets import PRESETS, Preset
from keras_regnet.pretrained.tags import canonical_weights, default_preset, eval_settings, resolve_tagged, tags
from tests.golden import equivalence as eq

NEW = Preset("regnetx_002", "test_in1k", "someone/regnetx_002.test_in1k", "apache-2.0", 70.0,
             input_size=256, crop_fraction=0.95, interpolation="bicubic", mean=(0.5, 0.5, 0.5),
             std=(0.5, 0.5, 0.5))


def test_every_row_names_a_zoo_architecture_once_and_states_its_facts():
    assert len(PRESETS) == len(presets._ROWS)  # no two rows share a tagged name
    for name, row in PRESETS.items():
        assert name == row.name == f"{row.arch}.{row.tag}"
        assert get_entry(row.arch).timm_name == row.arch
        assert row.licence and row.num_classes in (0, 1000, 11821)
        assert (0 < row.top1 < 100) if row.num_classes == 1000 else row.top1 is None  # in-12k / headless: none
        assert row.settings.tag == row.tag
    paper = list_models(beyond_paper=False)
    assert [default_preset(m).arch for m in paper] == [get_entry(m).timm_name for m in paper]


def test_the_zoo_reads_its_published_errors_from_the_rows():
    entry = get_entry("RegNetY-600MF")
    assert entry.reference_weights is PRESETS["regnety_006.pycls_in1k"]
    assert (entry.top1_err, entry.top5_err) == (24.54, 7.28)


def test_a_bad_row_is_refused_naming_its_value():
    with pytest.raises(ValueError, match="interpolation='area' is not one of"):
        dataclasses.replace(NEW, interpolation="area")
    with pytest.raises(ValueError, match=r"preset tag 'a\.b' of 'regnetx_002'"):
        dataclasses.replace(NEW, tag="a.b")
    with pytest.raises(ValueError, match=r"num_classes=-1 must be a positive integer or 0 \(headless\)"):
        dataclasses.replace(NEW, num_classes=-1)


def test_a_row_added_at_runtime_is_resolved_without_another_table(monkeypatch):
    from keras_regnet.pretrained.cache import cached_paths

    with pytest.raises(ValueError, match="no weights tagged 'test_in1k' for regnetx_002; tags we have: pycls_in1k"):
        resolve_model("regnetx_002.test_in1k")
    monkeypatch.setitem(PRESETS, NEW.name, NEW)
    spec, entry = resolve_model("hf://timm/regnetx_002.test_in1k")
    assert entry.name == "regnetx_200mf" and resolve_tagged("RegNetX-200MF.test_in1k")[1] is NEW
    assert "test_in1k" in tags()
    settings = eval_settings("regnetx_002.test_in1k")
    assert (settings.input_size, settings.interpolation, settings.scale_size()) == (256, "bicubic", 269)
    assert canonical_weights("regnetx_002.test_in1k", spec) == "regnetx_002.test_in1k"
    assert canonical_weights("test_in1k", spec) == "regnetx_002.test_in1k"
    assert canonical_weights("regnetx_002.pycls_in1k", spec) == "imagenet"  # the reference's row stays imagenet
    assert NEW.url("http://mirror") == "http://mirror/someone/regnetx_002.test_in1k/resolve/main/model.safetensors"
    raw, converted = cached_paths(NEW)
    assert re.search(r"keras_regnet_regnetx_200mf_test_in1k\.safetensors$", raw)
    assert re.search(r"keras_regnet_regnetx_200mf_test_in1k\.layers\.npz$", converted)


def test_the_loader_downloads_a_row_added_at_runtime(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from keras_regnet import RegNetX200MF
    from tests.keras_regnet.test_weights import serve

    meta, arrays = eq.load_case("regnetx_200mf")
    folder = tmp_path / "hub" / NEW.hf_repo / "resolve" / "main"
    folder.mkdir(parents=True)
    state = eq.to_timm(eq.reference_state(meta, arrays))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(folder / NEW.filename))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setitem(PRESETS, NEW.name, NEW)
    with serve(tmp_path / "hub") as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        model = RegNetX200MF(weights="regnetx_002.test_in1k", classifier_activation=None,
                             include_preprocessing=False)
    out = meta["outputs"][0]
    assert np.abs(np.asarray(model(eq.case_inputs(meta, out))) - arrays[out["key"]]).max() <= eq.TOLERANCE
    assert sorted(p.name for p in (tmp_path / "keras_home" / "models").iterdir()) == [
        "keras_regnet_regnetx_200mf_test_in1k.layers.npz"]
