"""The converter on checkpoint files the tests write themselves: formats, naming, layouts, errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.golden import equivalence as eq
from tests.helpers.paths import REPO_ROOT
from tests.helpers.quiet import assert_quiet

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def tiny():
    """The tiny golden RegNetY: metadata, arrays, its spec and the pycls state dict."""
    meta, arrays = eq.load_case("tiny_regnety")
    return meta, arrays, eq.case_spec(meta), eq.reference_state(meta, arrays)


def _logits_diff(model, meta, arrays):
    out = meta["outputs"][0]
    return np.abs(np.asarray(model(eq.case_inputs(meta, out))) - arrays[out["key"]]).max()


def _save_safetensors(state, path):
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))
    return str(path)


def test_weights_path_accepts_a_safetensors_checkpoint(tiny, tmp_path):
    from keras_regnet import build

    meta, arrays, spec, state = tiny
    path = _save_safetensors(state, tmp_path / "tiny.safetensors")
    model = build(spec, weights=path, classifier_activation=None, include_preprocessing=False)
    assert _logits_diff(model, meta, arrays) <= eq.TOLERANCE


def test_weights_path_accepts_an_npz_checkpoint_without_the_classifier(tiny, tmp_path):
    from keras_regnet import build

    meta, arrays, spec, state = tiny
    path = tmp_path / "tiny.npz"
    np.savez(path, **state)
    full = build(spec, weights=str(path), classifier_activation=None, include_preprocessing=False)
    features = build(spec, weights=str(path), include_top=False, pooling="avg", include_preprocessing=False)
    x = eq.case_inputs(meta, meta["outputs"][0])
    pooled = np.asarray(features(x))
    head = full.get_layer("predictions").get_weights()
    np.testing.assert_allclose(pooled @ head[0] + head[1], np.asarray(full(x)), atol=1e-5)


def test_torch_checkpoint_is_loaded_with_weights_only(tiny, tmp_path):
    torch = pytest.importorskip("torch")
    from keras_regnet import build

    meta, arrays, spec, state = tiny
    path = tmp_path / "tiny.pyth"
    torch.save({"epoch": 100, "model_state": {k: torch.from_numpy(v) for k, v in state.items()},
                "cfg": "REGNET: {}"}, path)  # the layout of a pycls training checkpoint
    model = build(spec, weights=str(path), classifier_activation=None, include_preprocessing=False)
    assert _logits_diff(model, meta, arrays) <= eq.TOLERANCE


def test_convert_checkpoint_writes_a_reusable_weights_file(tiny, tmp_path):
    from keras_regnet import build
    from keras_regnet.checkpoint_converter import convert_checkpoint

    meta, arrays, spec, state = tiny
    src = _save_safetensors(state, tmp_path / "tiny.safetensors")
    out = convert_checkpoint(spec, src, tmp_path / "tiny.weights.h5")
    assert os.path.isfile(out) and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    model = build(spec, weights=out, classifier_activation=None, include_preprocessing=False)
    assert _logits_diff(model, meta, arrays) <= eq.TOLERANCE
    keras_file = convert_checkpoint(spec, src, tmp_path / "tiny.keras")
    model = build(spec, weights=keras_file, classifier_activation=None, include_preprocessing=True)
    assert model.get_layer("stem_conv").get_weights()[0].shape == (3, 3, 3, 16)


def test_grouped_kernel_layout_and_stem_flip():
    from keras_regnet import make_spec
    from keras_regnet.checkpoint_converter import convert_state_dict, layer_map

    spec = make_spec([1], [16], group_widths=4, block="x", stem_width=8)
    state = {}
    for entry in layer_map(spec, "pycls"):
        for i, key in enumerate(entry.keys()):
            ndim = {"conv": 4, "conv_bias": 4, "dense": 2}.get(entry.kind, 1) if i == 0 else 1
            state[key] = np.zeros((1,) * ndim, np.float32)
    state["stem.conv.weight"] = np.arange(8 * 3 * 9, dtype=np.float32).reshape(8, 3, 3, 3)
    state["s1.b1.f.b.weight"] = np.arange(16 * 4 * 9, dtype=np.float32).reshape(16, 4, 3, 3)
    state["head.fc.weight"] = np.arange(1000 * 16, dtype=np.float32).reshape(1000, 16)
    weights = convert_state_dict(state, spec)
    grouped = weights["s1_b1_conv_b"][0]
    assert grouped.shape == (3, 3, 4, 16)  # [kh, kw, in/groups, out]
    assert grouped[1, 2, 3, 5] == state["s1.b1.f.b.weight"][5, 3, 1, 2]
    stem = weights["stem_conv"][0]
    assert stem[0, 1, 0, 7] == state["stem.conv.weight"][7, 2, 0, 1]  # RGB input 0 = BGR input 2
    assert weights["predictions"][0].shape == (16, 1000)
    assert weights["predictions"][0][3, 999] == state["head.fc.weight"][999, 3]
    unflipped = convert_state_dict(state, spec, bgr_to_rgb=False)["stem_conv"][0]
    assert unflipped[0, 1, 0, 7] == state["stem.conv.weight"][7, 0, 0, 1]


def test_missing_and_leftover_keys_are_listed(tiny):
    from keras_regnet.checkpoint_converter import convert_state_dict

    _, _, spec, state = tiny
    broken = dict(state)
    del broken["s1.b1.f.se.f_ex.0.bias"]
    broken["s9.b1.f.a.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"1 missing keys: s1\.b1\.f\.se\.f_ex\.0\.bias.*1 unexpected keys: s9\.b1\.f\.a\.weight"):
        convert_state_dict(broken, spec)


def test_shape_mismatch_names_the_layer_and_both_shapes(tiny):
    from keras_regnet import build
    from keras_regnet.checkpoint_converter import load_state_dict

    _, _, spec, state = tiny
    model = build(spec, classes=10, include_preprocessing=False)
    with pytest.raises(ValueError, match=r"layer 'predictions'.*\(\d+, 1000\).*\(\d+, 10\)"):
        load_state_dict(model, state, spec, source="tiny")


def test_checkpoint_of_another_model_is_rejected(tiny, tmp_path):
    from keras_regnet import RegNetY200MF

    _, _, _, state = tiny
    path = _save_safetensors(state, tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="does not match 'regnety_200mf'.*missing keys"):
        RegNetY200MF(weights=path)


def test_unknown_naming_and_formats_are_errors(tmp_path):
    from keras_regnet import RegNetX200MF
    from keras_regnet.pretrained.state_dict import detect_naming, read_state_dict

    with pytest.raises(ValueError, match="cannot tell the naming"):
        detect_naming(["features.0.weight", "classifier.weight"])
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        read_state_dict(bad)
    other = tmp_path / "weights.bin.gz"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"Unsupported weights file .*\.safetensors"):
        RegNetX200MF(weights=str(other))


def test_cli_converts_and_reports_bad_flags(tiny, tmp_path):
    meta, arrays, spec, state = tiny
    src = _save_safetensors(state, tmp_path / "tiny.safetensors")
    spec_file = tmp_path / "tiny.json"
    spec_file.write_text(spec.to_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = tmp_path / "tiny.weights.h5"
    run = subprocess.run([sys.executable, "-m", "keras_regnet.convert", f"--model={spec_file}",
                          f"--checkpoint={src}", f"--output={out}"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert out.is_file() and "wrote" in run.stdout
    assert_quiet(run)
    run = subprocess.run([sys.executable, "-m", "keras_regnet.convert", "--model=regnety_600mf",
                          f"--checkpoint={tmp_path / 'absent.safetensors'}", f"--output={out}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "--checkpoint must be an existing file" in run.stderr
    run = subprocess.run([sys.executable, "-m", "keras_regnet.convert", "--model=regnety_600mf",
                          f"--checkpoint={src}", "--output=out.h5"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != 0 and "--output must end in .weights.h5 or .keras" in run.stderr


def test_torch_checkpoint_without_torch_says_what_to_install(tmp_path, monkeypatch):
    from keras_regnet.pretrained.state_dict import read_state_dict

    path = tmp_path / "RegNetY-600MF_dds_8gpu.pyth"
    path.write_bytes(b"\x80\x02}q\x00.")  # any bytes: torch is never reached
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ValueError, match=r"needs PyTorch \(pip install torch\).*safetensors"):
        read_state_dict(path)


def test_a_pickle_with_code_is_refused_by_weights_only(tmp_path):
    pytest.importorskip("torch")
    import pickle

    from keras_regnet.pretrained.state_dict import read_state_dict

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model_state": Evil()}, f)
    with pytest.raises(ValueError, match="weights_only=True"):
        read_state_dict(path)
