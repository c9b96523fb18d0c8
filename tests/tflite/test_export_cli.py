"""End to end: `python -m tflite.export` on a tiny RegNetY trained on the embedded digits."""

import json
import os
import subprocess
import sys

import pytest

from keras_regnet import make_spec
from tflite.export_run import DEFAULT_FORMATS, ExportConfig, run_export
from tests.helpers import prefetch
from tests.helpers.paths import REPO_ROOT

SIZE = 16
# Bars at the measured value minus a stated margin, top-1 agreement with the float model on the 364
# held-out digits (the trained fixture gives the same values run after run; the two values are
# before / after BN moved to TensorFlow's fused kernel, which changes the trained weights slightly):
INT8_AGREEMENT = 0.97  # measured 0.986 / 0.989 (PTQ int8); margin 1.6 points (6 images)
ONNX_INT8_AGREEMENT = 0.98  # measured 0.9945 / 0.9945 (ONNX Runtime static QDQ); margin 1.5 points
QAT_AGREEMENT = 0.85  # measured 0.89-0.995: 1 QAT epoch is not deterministic across thread schedules
PRUNED_AGREEMENT = 0.78  # measured 0.83-0.885 (30% sparsity, 2 epochs); margin 5 points
REPO = str(REPO_ROOT)


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory):
    """A real training run's model_dir (training.api.train on the digits), and the spec JSON file."""
    from training.api import train

    root = tmp_path_factory.mktemp("trained")
    spec = make_spec([1, 1], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=16,
                     stem_stride=1, name="tiny_digits")
    model_dir = root / "model_dir"
    result = train(spec, epochs=4, image_size=SIZE, batch_size=32, lr=0.1, warmup_epochs=0.5,
                   model_dir=str(model_dir))
    assert result["top1_err"] < 40, result
    (root / "spec.json").write_text(spec.to_json())
    trained = {"model_dir": str(model_dir), "spec": str(root / "spec.json"), "root": root}
    # The QAT + pruning CLI (minutes) starts now, in its own process, and runs beside the in-process tests
    # below; its output goes under its own folder, so no staging folder of it shows in `root`.
    qat = prefetch.Prefetch(lambda _: lambda: _qat_cli(trained), ["qat"] if prefetch.selected(
        request, "test_cli_qat_int8_and_pruned_int8_end_to_end_in_their_own_process") else [])
    yield {**trained, "qat": lambda: qat.get("qat")}
    qat.close()


def _config(trained, **changes):
    base = dict(model=trained["spec"], weights=trained["model_dir"], image_size=SIZE,
                output_dir=str(trained["root"] / "export"), eval_data="digits:test", eval_images=400,
                calibration_steps=50, latency_runs=3)
    return ExportConfig(**{**base, **changes})


def test_every_non_qat_format_is_produced_scored_and_laid_out_for_serving(trained):
    result = run_export(_config(trained, formats=DEFAULT_FORMATS + ("onnx", "onnx_int8")))
    out = trained["root"] / "export"
    assert (out / "tiny_digits" / "1" / "saved_model.pb").is_file()
    for fmt in ("float32", "float16", "dynamic_int8", "int8"):
        assert (out / "tflite" / f"tiny_digits_{fmt}.tflite").is_file()
    assert (out / "onnx" / "tiny_digits.onnx").is_file() and (out / "onnx" / "tiny_digits_int8.onnx").is_file()
    for name in ("report.json", "report.md", "rest_request.json", "spec.json"):
        assert (out / name).is_file()
    assert not [p for p in os.listdir(trained["root"]) if ".tmp-" in p]  # staging renamed away
    report = json.loads((out / "report.json").read_text())
    rows = {row["name"]: row for row in report["variants"]}
    assert report["weights"].endswith("model.keras") and report["scored_images"] == 364
    assert rows["keras_float"]["top1"] > 0.6
    assert rows["saved_model"]["signatures"] == ["serve_image_bytes", "serving_default"]
    assert rows["saved_model"]["agreement"] == 1.0
    assert rows["float32"]["agreement"] >= 0.99
    assert rows["int8"]["agreement"] >= INT8_AGREEMENT, rows["int8"]
    assert rows["int8"]["io_type"] == "uint8"
    assert rows["int8"]["size_bytes"] < 0.75 * rows["float32"]["size_bytes"]  # tiny: headers weigh in
    print({name: (row["agreement"], row["top1"]) for name, row in rows.items()})  # the measured values
    for fmt in ("float16", "dynamic_int8"):
        assert rows[fmt]["agreement"] >= 0.99, rows[fmt]
    for fmt in ("float32", "float16", "dynamic_int8", "int8", "onnx", "onnx_int8"):
        assert set(rows[fmt]["latency_ms"]) == {"1", "2"}
        assert rows[fmt]["latency_ms"]["2"]["p90_ms"] > 0
    for fmt in ("float32", "float16", "dynamic_int8", "int8"):
        total = rows[fmt]["xnnpack_convs"].split("/")[1]
        assert rows[fmt]["xnnpack_convs"] == f"{total}/{total}" and int(total) > 0, rows[fmt]
    # BN folded into the SavedModel's convs; timed against the unfolded graph at batch 1 and 32
    assert rows["saved_model"]["max_logit_diff"] < 1e-3 and "BN folded" in rows["saved_model"]["runtime"]
    for key in ("batch_latency_ms", "unfolded_batch_latency_ms"):
        assert set(rows["saved_model"][key]) == {"1", "32"} and rows["saved_model"][key]["1"]["median_ms"] > 0
    onnx_row = rows["onnx"]
    assert onnx_row["agreement"] == 1.0 and onnx_row["max_logit_diff"] < 1e-3, onnx_row
    assert onnx_row["runtime"].endswith("opset 17") and "Conv" in onnx_row["ops"]
    assert "QuantizeLinear" in rows["onnx_int8"]["ops"]
    assert rows["onnx_int8"]["agreement"] >= ONNX_INT8_AGREEMENT, rows["onnx_int8"]
    assert "| onnx_int8 |" in result["table"] and "opset 17" in result["table"]
    assert "| int8 |" in result["table"] and "| int8 |" in (out / "report.md").read_text()


def test_existing_output_is_not_overwritten_without_the_flag(trained):
    (trained["root"] / "taken").mkdir()
    with pytest.raises(ValueError, match="--overwrite"):
        run_export(_config(trained, output_dir=str(trained["root"] / "taken")))


def test_missing_checkpoint_names_the_file(trained):
    with pytest.raises(ValueError, match=r"--weights='/no/such/model.keras' does not exist"):
        run_export(_config(trained, weights="/no/such/model.keras", output_dir=str(trained["root"] / "x1")))


def test_mismatched_checkpoint_names_file_and_expected_model(trained):
    other = make_spec([1, 1], [24, 48], group_widths=8, block="y", se_ratio=0.25, stem_width=16,
                      stem_stride=1, name="wider")
    with pytest.raises(ValueError, match=r"checkpoint '.*model.keras' does not match the expected model 'wider'"):
        run_export(_config(trained, model=other.to_json(), output_dir=str(trained["root"] / "x2")))


def test_calibration_data_without_images_fails_before_conversion(trained, tmp_path):
    with pytest.raises(ValueError, match="--calibration_data=.*yielded no images"):
        run_export(_config(trained, calibration_data=str(tmp_path), output_dir=str(trained["root"] / "x3")))
    assert not (trained["root"] / "x3").exists()


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, "half"])
def test_bad_prune_sparsity_names_the_flag(trained, sparsity):
    with pytest.raises(ValueError, match=r"--prune_sparsity must be in \[0, 1\), got"):
        run_export(_config(trained, formats=("pruned_int8",), prune_sparsity=sparsity,
                           output_dir=str(trained["root"] / "x4")))


def _cli(*args, timeout=900):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_USE_LEGACY_KERAS", None)
    return subprocess.run([sys.executable, "-m", "tflite.export", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def test_cli_bad_format_names_the_flag(tmp_path):
    result = _cli("--formats=float32,int4", f"--output_dir={tmp_path / 'o'}", timeout=300)
    assert result.returncode == 1
    assert "--formats" in result.stderr and "int4" in result.stderr and "qat_int8" in result.stderr


def _qat_cli(trained) -> tuple:
    out = trained["root"] / "qat" / "qat_export"
    return out, _cli(f"--model={trained['spec']}", f"--weights={trained['model_dir']}", f"--image_size={SIZE}",
                     "--formats=qat_int8,pruned_int8", f"--output_dir={out}", "--eval_data=digits:test",
                     "--eval_images=400",
                     "--qat_epochs=1", "--prune_epochs=2", "--prune_sparsity=0.3", "--qat_images=512",
                     "--latency_runs=3", "--calibration_steps=20")


def test_cli_qat_int8_and_pruned_int8_end_to_end_in_their_own_process(trained):
    """QAT and pruning import TFMOT (which flips TF_USE_LEGACY_KERAS), so they run in a subprocess."""
    out, result = trained["qat"]()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| qat_int8 |" in result.stdout
    rows = {row["name"]: row for row in json.loads((out / "report.json").read_text())["variants"]}
    print({name: (row["agreement"], row["top1"]) for name, row in rows.items()})  # the measured values
    qat = rows["qat_int8"]
    assert qat["io_type"] == "uint8" and "CONV_2D" in qat["ops"]
    assert not [op for op in qat["ops"] if op.startswith("Flex") or op == "CUSTOM"]
    # One epoch of QAT on 512 images keeps the float model's predictions; top-1 within 5 points of float.
    assert qat["agreement"] >= QAT_AGREEMENT, qat
    assert qat["top1"] >= rows["keras_float"]["top1"] - 0.05, (qat, rows["keras_float"])
    pruned = rows["pruned_int8"]
    assert abs(pruned["sparsity"] - 0.3) < 0.02, pruned
    assert pruned["io_type"] == "uint8" and pruned["gzip_bytes"] < pruned["size_bytes"]
    assert pruned["agreement"] >= PRUNED_AGREEMENT, pruned
    assert "| pruned_int8 |" in result.stdout and "kernel sparsity 30%" in result.stdout
