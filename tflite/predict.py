"""`python -m tflite.predict`: classify image files with an exported .tflite model on LiteRT.

    python -m tflite.predict --tflite=export/tflite/regnety_600mf_int8.tflite --images=photo.jpg,b.png

Each image gets the weights' eval preprocessing (the export's report.json `eval_settings`, else the
reference's: shorter side to size / 0.875, central crop; the model normalises itself), then one
LiteRT invoke; int8 inputs and outputs are (de)quantized with the model's own scales. Class names
come from --class_names, else the export's class_names.json (beside the tflite/ folder), else the
label file in the model's LiteRT metadata, else class ids are printed.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Sequence

from keras_regnet import cli_help
from keras_regnet.errors import ConfigError, cli_boundary
from keras_regnet.pretrained.file_check import check_tflite

if TYPE_CHECKING:
    from keras_regnet.presets import EvalSettings

from absl import app, flags  # noqa: E402

from tflite import name_clash  # noqa: E402

name_clash.require_ours()

FLAGS = flags.FLAGS
flags.DEFINE_string("tflite", None, "The .tflite file written by python -m tflite.export.")
flags.DEFINE_list("images", None, "Image files (JPEG, PNG, BMP, GIF), comma-separated.")
flags.DEFINE_string("class_names", None, "A JSON list of class names; default: the export's class_names.json.")
flags.DEFINE_integer("top_k", 3, "Classes printed per image.")


def find_class_names(tflite_path: str, explicit: str | None = None) -> list[str] | None:
    """--class_names, else class_names.json in the export folder (the parent of tflite/), else None."""
    folder = os.path.dirname(os.path.abspath(tflite_path))
    for candidate in ([explicit] if explicit else [os.path.join(os.path.dirname(folder), "class_names.json"),
                                                   os.path.join(folder, "class_names.json")]):
        if os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as f:
                return [str(n) for n in json.load(f)]
        if explicit:
            raise ConfigError(f"--class_names={explicit!r}: no such file")
    from tflite.metadata import describe

    with open(tflite_path, "rb") as f:
        described = describe(f.read())
    return described["labels"] if described else None


def find_eval_settings(tflite_path: str) -> "EvalSettings":
    """The eval settings the export recorded in report.json (beside the tflite/ folder), else pycls's."""
    from keras_regnet.presets import DEFAULT, EvalSettings

    report = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(tflite_path))), "report.json")
    if not os.path.isfile(report):
        return DEFAULT
    with open(report, encoding="utf-8") as f:
        recorded = json.load(f).get("eval_settings")
    if not recorded:
        return DEFAULT
    return EvalSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})


def predict(tflite_path: str, images: Sequence[str], top_k: int = 3, names: list[str] | None = None,
            settings: "EvalSettings | None" = None) -> list[list[tuple[str, float]]]:
    """Top-k (class name or id, probability) per image file, cropped as `settings` (default: the
    export's recorded eval settings) say."""
    import numpy as np
    import tensorflow as tf

    from keras_regnet.pretrained.eval_crop import decode_and_center_crop
    from tflite.report import _interpreter, tflite_predict

    check_tflite(tflite_path, "--tflite")
    size = int(_interpreter(tflite_path, 1).get_input_details()[0]["shape"][1])
    settings = settings or find_eval_settings(tflite_path)
    batch = []
    for path in images:
        if not os.path.isfile(path):
            raise ConfigError(f"--images: {path!r} is not a file")
        batch.append(decode_and_center_crop(tf.io.read_file(path), size, settings).numpy())
    probs = tflite_predict(tflite_path, np.stack(batch))
    if names is not None and len(names) != probs.shape[-1]:
        raise ConfigError(f"{len(names)} class names for a model with {probs.shape[-1]} classes")
    out = []
    for row in probs:
        order = np.argsort(-row)[:top_k]
        out.append([(names[i] if names else str(int(i)), float(row[i])) for i in order])
    return out


def main(argv: list[str]) -> int:
    """Print `<image>: <name> <prob>, ...` per image; one-line errors naming the flag."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.tflite or not os.path.isfile(FLAGS.tflite):
        raise ConfigError(f"--tflite={FLAGS.tflite!r} is not a file; pass a .tflite from tflite.export")
    check_tflite(FLAGS.tflite, "--tflite")
    if not FLAGS.images:
        raise ConfigError("--images is empty; pass one or more image files")
    if FLAGS.top_k < 1:
        raise ConfigError(f"--top_k must be >= 1, got {FLAGS.top_k}")
    names = find_class_names(FLAGS.tflite, FLAGS.class_names)
    results = predict(FLAGS.tflite, FLAGS.images, FLAGS.top_k, names)
    for path, top in zip(FLAGS.images, results):
        print(f"{path}: " + ", ".join(f"{name} {prob:.3f}" for name, prob in top))
    return 0


if __name__ == "__main__":
    cli_help.run(cli_boundary(main))
