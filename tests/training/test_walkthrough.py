"""The README's "Fine-tune on your own photos and ship to a phone", run as written (commands read from
README.md) on a generated photo folder with a local stand-in for the ImageNet checkpoint, no network.

Only sizes change for CI: RegNetX-200MF (the stand-in's model) in place of RegNetY-600MF, 64 px
images, one epoch, a handful of calibration and timing runs.
"""

import json
import os
import re
import shlex
import subprocess
import sys

from tests.helpers.standin import make_image_folder, place_imagenet_standin
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT
SECTION = "## Fine-tune on your own photos and ship to a phone"
FAST = {
    "training.main": ["--image_size=64", "--epochs=1", "--verbose=2"],  # the batch of 64 fits itself to the folder
    "tflite.export": ["--image_size=64", "--calibration_steps=4", "--eval_images=4", "--latency_runs=2"],
    "tflite.predict": [],
}


def readme_commands() -> list[str]:
    """The `python -m ...` lines of the walkthrough's code block."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(SECTION):].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("python -m ")]


def test_readme_walkthrough_runs_end_to_end(tmp_path):
    commands = readme_commands()
    assert [c.split()[2] for c in commands] == ["training.main", "tflite.export", "tflite.predict"]
    photos = make_image_folder(tmp_path / "photos")
    (photos / "cat").mkdir()
    (photos / "class_0" / "img_00.png").rename(photos / "cat" / "001.jpg")  # step 4's example image
    keras_home = tmp_path / "keras_home"
    place_imagenet_standin(keras_home)
    env = {**os.environ, "HOME": str(tmp_path), "KERAS_HOME": str(keras_home), "PYTHONPATH": str(ROOT),
           "HF_ENDPOINT": "http://127.0.0.1:9", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    outputs = []
    for command in commands:
        command = command.replace("regnety_600mf", "regnetx_200mf").replace("$HOME", str(tmp_path))
        args = shlex.split(command)
        args = [sys.executable] + args[1:] + FAST[args[2]]
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        outputs.append(result.stdout)
    assert "Loaded --weights=imagenet" in outputs[0]
    assert "re-initialised the classifier 'predictions' for 4 classes" in outputs[0]
    assert json.loads((tmp_path / "runs/photos/class_names.json").read_text()) == \
        ["cat", "class_0", "class_1", "class_2"]
    assert (tmp_path / "export/photos/class_names.json").is_file()
    assert (tmp_path / "export/photos/tflite/regnetx_200mf_int8.tflite").is_file()
    line = outputs[2].strip().splitlines()[-1]
    assert re.fullmatch(r".*001\.jpg: (?:(?:cat|class_\d) [01]\.\d{3}(?:, |$)){3}", line), line
