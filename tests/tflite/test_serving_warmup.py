"""TF Serving warm-up: the records read back and, replayed in a new process, give the direct outputs."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")

from keras_regnet.pretrained.eval_crop import scale_and_center_crop  # noqa: E402
from tests.tflite.test_saved_model import SIZE  # noqa: E402
from tests.tflite.test_saved_model import exported as saved  # noqa: E402,F401  (its SavedModel fixture)
from tflite import serving_warmup  # noqa: E402

REPLAY = """
import json, sys
import numpy as np
import tensorflow as tf
from tflite.serving_warmup import read_warmup
version_dir, out = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(version_dir)
logits = {}
for i, (signature, inputs) in enumerate(read_warmup(version_dir + "/assets.extra/tf_serving_warmup_requests")):
    result = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    logits[f"{i}_{signature}"] = result["logits"].numpy()
np.savez(out, **logits)
"""


@pytest.fixture(scope="module")
def exported(saved):
    """(Keras logits model, version dir, warm-up file, the 5 images the requests are made of)."""
    model, version_dir, _, images = saved
    images = images[:5]  # fewer than the largest batch: repeated
    return model, version_dir, serving_warmup.write_warmup(version_dir, images, "tiny_y"), images


def test_one_request_per_signature_and_batch_size_from_the_calibration_images(exported):
    _, version_dir, path, images = exported
    assert path == os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    records = serving_warmup.read_warmup(path)
    shapes = [(sig, {k: v.shape for k, v in inputs.items()}) for sig, inputs in records]
    assert shapes == [(sig, {key: (b, SIZE, SIZE, 3) if key == "images" else (b,)})
                      for b in serving_warmup.WARMUP_BATCH_SIZES
                      for sig, key in (("serving_default", "images"), ("serve_image_bytes", "image_bytes"))]
    np.testing.assert_array_equal(records[4][1]["images"], images[[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]])
    decoded = tf.io.decode_png(records[3][1]["image_bytes"][2]).numpy()
    np.testing.assert_array_equal(decoded, np.round(images[2]).astype(np.uint8))


def test_replayed_in_a_new_process_the_requests_give_the_direct_outputs(exported, tmp_path):
    model, version_dir, path, _ = exported
    out = tmp_path / "replayed.npz"
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", REPLAY, version_dir, str(out)], check=True, env=env, timeout=300)
    replayed = np.load(out)
    records = serving_warmup.read_warmup(path)
    assert len(replayed.files) == len(records) == 6
    for i, (signature, inputs) in enumerate(records):
        if signature == "serving_default":
            x = inputs["images"]
        else:
            x = np.stack([scale_and_center_crop(tf.io.decode_png(b), SIZE).numpy() for b in inputs["image_bytes"]])
        direct = model(x, training=False).numpy()
        assert np.abs(direct).max() > 1e-3  # a model that outputs nothing would not count as agreement
        np.testing.assert_allclose(replayed[f"{i}_{signature}"], direct, atol=1e-4)


def test_batching_parameters_allow_exactly_the_warmed_batch_sizes():
    text = serving_warmup.batching_parameters(threads=3)
    allowed = [int(v) for v in re.findall(r"^allowed_batch_sizes: (\d+)$", text, re.M)]
    assert allowed == list(serving_warmup.WARMUP_BATCH_SIZES)
    # TF Serving requires the last allowed size to equal max_batch_size.
    assert re.search(r"^max_batch_size \{ value: (\d+) \}$", text, re.M)[1] == str(allowed[-1])
    assert "num_batch_threads { value: 3 }" in text
    assert "--enable_batching=true" in text and "--batching_parameters_file=" in text


def test_no_images_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at least one calibration image"):
        serving_warmup.write_warmup(str(tmp_path), np.zeros((0, SIZE, SIZE, 3), np.float32), "m")


def test_the_export_writes_warmup_and_batching_beside_the_saved_model(tmp_path):
    from tflite.export_run import ExportConfig, run_export

    out = tmp_path / "export"
    run_export(ExportConfig(model="regnetx_digits", output_dir=str(out), formats=("saved_model",), image_size=32,
                            calibration_steps=4, eval_images=4, latency_runs=1))
    records = serving_warmup.read_warmup(str(out / "regnetx_digits" / "1" / serving_warmup.WARMUP_FILE))
    assert {sig for sig, _ in records} == {"serving_default", "serve_image_bytes"}
    assert (out / "batching_parameters.txt").read_text() == serving_warmup.batching_parameters()
    report = json.loads((out / "report.json").read_text())
    assert report["eval_settings"]["crop_fraction"] == 0.875 and report["eval_settings"]["interpolation"] == "bilinear"
