"""QAT model set-up: calibrated ranges and the frozen input normalization (tests/helpers/qat_probe.py)."""

import json
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

PROBE = "tests.helpers.qat_probe"


@pytest.fixture(scope="module")
def probe():
    """The probe's JSON; it runs in its own process because importing TFMOT flips tf.keras."""
    result = subprocess.run([sys.executable, "-m", PROBE], capture_output=True, text=True, timeout=600,
                            cwd=str(REPO_ROOT))
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("QAT_PROBE "))
    return json.loads(line.partition(" ")[2])


def test_calibration_sets_the_input_range_to_the_images(probe):
    # The input QuantizeLayer starts at [0, 0]; left there, inference mode sees an all-zero image.
    assert probe["input_range"] == probe["image_range"] == [0.0, 255.0]


def test_calibrated_qat_model_matches_the_float_twin_in_inference_mode(probe):
    # 8-bit fake quantization of a 2-stage model: logits within 30% of the float range (a model with
    # placeholder weight or input ranges is off by 100%).
    assert probe["calibrated"] > 40
    assert probe["error_calibrated"] < 0.3, probe


def test_input_normalization_stays_frozen_through_fine_tuning(probe):
    # TFMOT's wrapper re-lists the frozen 1/(255*std) kernel as trainable; it has the largest
    # gradient in the model and fine-tuning would wreck the input scaling.
    assert probe["trainable_preprocessing"] == []
    assert probe["preprocessing_change"] == 0.0
