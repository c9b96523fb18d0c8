"""A wrong or broken weights file is one WeightsError line naming the file and what is wrong with it
(keras_regnet.pretrained.file_check), and a --weights directory is a run directory or an error listing
the run directories directly inside it (keras_regnet.pretrained.load.run_directory_weights)."""

import os
import subprocess
import sys
import time

import pytest

from keras_regnet import build, make_spec
from keras_regnet.errors import WeightsError
from keras_regnet.pretrained.file_check import check_tflite, check_weights_file
from keras_regnet.pretrained.load import resolve_weights
from tests.helpers.paths import REPO_ROOT

SPEC = make_spec([1], [16], group_widths=8, block="x", stem_width=8, stem_stride=1, name="tiny_x")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real .weights.h5, .keras and .tflite of a tiny RegNetX."""
    folder = tmp_path_factory.mktemp("saved")
    model = build(SPEC, input_shape=(None, None, 3), classes=5, classifier_activation=None)
    model.save_weights(str(folder / "m.weights.h5"))
    model.save(str(folder / "m.keras"))
    from tflite import to_tflite

    (folder / "m.tflite").write_bytes(to_tflite.convert_model(model, 16, "float32"))
    return folder


def _cut(src, dst, keep):
    """A copy of `src` holding only its first `keep` bytes (a partial download)."""
    data = src.read_bytes()
    dst.write_bytes(data[:keep] if keep > 0 else data[:len(data) + keep])
    return str(dst)


def test_intact_files_pass(saved):
    for name in ("m.weights.h5", "m.keras", "m.tflite"):
        check_weights_file(str(saved / name))


def test_a_corrupt_weights_h5_is_a_weights_error_from_the_builder(tmp_path):
    import keras_regnet

    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"this is not hdf5" * 64)
    with pytest.raises(WeightsError, match=r"bad\.weights\.h5' is not an HDF5 file \(no HDF5 signature; 1024 bytes\)"):
        keras_regnet.RegNetY200MF(weights=str(bad), input_shape=(32, 32, 3))


def test_a_truncated_weights_h5_says_truncated_with_both_sizes(saved, tmp_path):
    full = (saved / "m.weights.h5").stat().st_size
    path = _cut(saved / "m.weights.h5", tmp_path / "cut.weights.h5", -100)
    with pytest.raises(WeightsError, match=rf"is truncated: its HDF5 superblock records {full} bytes but the file "
                                           rf"has {full - 100}"):
        resolve_weights(path)


def test_a_truncated_keras_file_says_truncated_not_file_not_found(saved, tmp_path):
    path = _cut(saved / "m.keras", tmp_path / "partial.keras", 2000)
    with pytest.raises(WeightsError, match=r"partial\.keras' is truncated: a zip archive \(2000 bytes\) without"):
        resolve_weights(path)


def test_a_keras_file_that_is_no_zip_or_no_model_is_named(tmp_path):
    (tmp_path / "text.keras").write_text("hello")
    with pytest.raises(WeightsError, match=r"text\.keras' is not a zip archive \(5 bytes\)"):
        resolve_weights(str(tmp_path / "text.keras"))
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.keras", "w") as z:
        z.writestr("readme.txt", "x")
    with pytest.raises(WeightsError, match="is a zip archive but not a Keras model: it lacks config.json, "
                                           "model.weights.h5"):
        resolve_weights(str(tmp_path / "other.keras"))


def test_a_corrupt_or_truncated_tflite_is_named(saved, tmp_path):
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match=r"junk\.tflite' is not a TFLite flatbuffer \(no 'TFL3' identifier; 64"):
        check_tflite(str(tmp_path / "junk.tflite"))
    size = (saved / "m.tflite").stat().st_size
    for keep in (size // 2, size - 16):
        path = _cut(saved / "m.tflite", tmp_path / f"cut{keep}.tflite", keep)
        with pytest.raises(WeightsError, match=rf"is truncated or damaged: a TFLite flatbuffer of {keep} bytes"):
            check_tflite(path)


def test_a_run_directory_gives_its_own_model_and_never_searches_below(saved, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "model.keras").write_bytes((saved / "m.keras").read_bytes())
    time.sleep(0.01)
    (run / "eval" / "deep").mkdir(parents=True)  # a newer .keras further down is not this run's model
    (run / "eval" / "deep" / "newer.keras").write_bytes((saved / "m.keras").read_bytes())
    assert resolve_weights(str(run)) == str(run / "model.keras")


def test_a_folder_of_runs_is_an_error_listing_them(saved, tmp_path):
    for name in ("run_b", "run_a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.keras").write_bytes((saved / "m.keras").read_bytes())
    (tmp_path / "unfinished" / "checkpoints").mkdir(parents=True)
    (tmp_path / "photos" / "deep").mkdir(parents=True)
    (tmp_path / "photos" / "deep" / "stray.keras").write_bytes((saved / "m.keras").read_bytes())
    with pytest.raises(WeightsError, match=r"is not a run directory \(no model.keras, \*\.keras or \*\.weights\.h5 "
                                           r"in it\); run directories inside it: run_a, run_b, unfinished$"):
        resolve_weights(str(tmp_path), label="--weights")
    with pytest.raises(WeightsError, match="is a run directory with checkpoints but no model.keras"):
        resolve_weights(str(tmp_path / "unfinished"))
    with pytest.raises(WeightsError, match="without any .* and no run directories inside it"):
        resolve_weights(str(tmp_path / "photos"))


def test_the_export_door_names_a_truncated_keras_file(saved, tmp_path):
    """tflite.export's --weights door (it said "has no usable 'predictions' layer: File not found")."""
    from tflite.model_args import load_float_model

    path = _cut(saved / "m.keras", tmp_path / "partial.keras", 2000)
    with pytest.raises(WeightsError, match=r"--weights='.*partial\.keras' is truncated"):
        load_float_model(SPEC, path)


def _cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=300)


@pytest.mark.parametrize("module,flag,name,extra", [
    ("training.evaluate", "--weights", "bad.weights.h5", ["--model=regnetx_200mf", "--dataset=digits"]),
    ("tflite.predict", "--tflite", "bad.tflite", ["--images=x.png", "--top_k=1"]),
])
def test_the_clis_print_one_line_and_exit_2(saved, tmp_path, module, flag, name, extra):
    path = tmp_path / name
    if name.endswith(".keras"):
        _cut(saved / "m.keras", path, 2000)
    else:
        path.write_bytes(b"garbage!" * 16)
    result = _cli(module, f"{flag}={path}", *extra)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("FATAL")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"{flag}={str(path)!r}" in lines[0] and ("truncated" in lines[0] or "is not a" in lines[0])
    assert os.path.exists(path)
