"""`python -m tflite.export`: SavedModel for TF Serving and TFLite variants, with a report.

Example (a model trained by `python -m training.main`, which writes model_dir/model.keras):

    python -m tflite.export --model=regnety_digits --weights=/tmp/regnet_run --image_size=32 \
        --output_dir=/tmp/regnet_export --formats=saved_model,float32,float16,dynamic_int8,int8,qat_int8 \
        --eval_data=digits:test

ONNX (opset 17, dynamic batch) and its static int8 QDQ form: --formats=onnx,onnx_int8 (needs the
`onnx` extra). With no flags it exports a randomly initialised RegNetY-600MF at 224 (calibrated on
the embedded digits) to ./export, which shows the whole pipeline without any download.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from tflite.pipeline import DEFAULT_FORMATS, FORMATS, ExportConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "regnety_600mf", "Zoo name (e.g. regnety_600mf, RegNetX-400MF), a NetSpec JSON "
                    "file or inline JSON, or a training built-in (regnety_digits) when training/ is installed.")
flags.DEFINE_string("weights", None, "imagenet (zoo models), a reference checkpoint (.safetensors, .npz, .pth), "
                    "a .keras file, a .weights.h5 file, or a training --model_dir (its newest *.keras, else "
                    "newest *.weights.h5). Unset: random weights (a warning is logged).")
flags.DEFINE_string("output_dir", "export", "Where the artefacts go (written to a temp folder, then renamed).")
flags.DEFINE_list("formats", list(DEFAULT_FORMATS), f"Any of: {', '.join(FORMATS)}.")
flags.DEFINE_integer("image_size", 224, "Square input size of the exports (the model's training size).")
flags.DEFINE_integer("classes", None, "Classifier size; unset: read from the checkpoint (1000 without weights).")
flags.DEFINE_string("calibration_data", "digits:train", "Real images for int8 calibration and agreement: "
                    "digits[:train|:test|:all] (embedded), an image folder, or tfds:<name>[:<split>].")
flags.DEFINE_integer("calibration_steps", 100, "Images (batch 1) fed to the int8 representative dataset.")
flags.DEFINE_string("eval_data", None, "Labelled images for top-1/top-5 in the report (same syntax); unset: "
                    "agreement with the float model on the calibration images only.")
flags.DEFINE_integer("eval_images", 200, "At most this many images are scored per variant.")
flags.DEFINE_enum("int8_io", "uint8", ["int8", "uint8"], "Input/output type of the int8 and qat_int8 models.")
flags.DEFINE_string("model_name", None, "TF Serving model name (folder); default: the spec's name.")
flags.DEFINE_integer("version", 1, "TF Serving version folder.")
flags.DEFINE_integer("top_k", 5, "k of the top_k_classes / top_k_probabilities outputs.")
flags.DEFINE_integer("latency_runs", 30, "Timed LiteRT invokes per variant and thread count.")
flags.DEFINE_string("qat_data", None, "Labelled images for QAT fine-tuning; default: --calibration_data.")
flags.DEFINE_integer("qat_epochs", 2, "QAT fine-tuning epochs.")
flags.DEFINE_float("qat_learning_rate", 1e-3, "QAT fine-tuning learning rate (SGD, Nesterov momentum 0.9).")
flags.DEFINE_integer("qat_batch_size", 32, "QAT fine-tuning batch size.")
flags.DEFINE_integer("qat_images", 1000, "At most this many QAT training images.")
flags.DEFINE_float("prune_sparsity", 0.5, "pruned_int8: fraction of conv/dense kernel weights set to zero "
                   "by TFMOT magnitude pruning (polynomial schedule over the fine-tune).")
flags.DEFINE_integer("prune_epochs", 2, "pruned_int8: pruning fine-tune epochs (on --qat_data, at --qat_learning_rate).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")


def config_from_flags() -> ExportConfig:
    """ExportConfig from the parsed absl flags."""
    return ExportConfig(
        model=FLAGS.model, weights=FLAGS.weights, output_dir=FLAGS.output_dir,
        formats=tuple(f.strip() for f in FLAGS.formats if f.strip()), image_size=FLAGS.image_size,
        classes=FLAGS.classes, calibration_data=FLAGS.calibration_data,
        calibration_steps=FLAGS.calibration_steps, eval_data=FLAGS.eval_data, eval_images=FLAGS.eval_images,
        int8_io=FLAGS.int8_io, model_name=FLAGS.model_name, version=FLAGS.version, top_k=FLAGS.top_k,
        latency_runs=FLAGS.latency_runs, qat_data=FLAGS.qat_data, qat_epochs=FLAGS.qat_epochs,
        qat_learning_rate=FLAGS.qat_learning_rate, qat_batch_size=FLAGS.qat_batch_size,
        qat_images=FLAGS.qat_images, prune_sparsity=FLAGS.prune_sparsity, prune_epochs=FLAGS.prune_epochs,
        overwrite=FLAGS.overwrite,
    )


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    absl_logging.set_verbosity(absl_logging.WARNING)  # TensorFlow's INFO chatter off
    logging.getLogger("tflite").setLevel(logging.INFO)  # our progress lines on
    from tflite.pipeline import run_export

    try:
        result = run_export(config_from_flags())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result["table"])
    print(f"\nwrote {os.path.abspath(result['output_dir'])} (report.json, report.md, rest_request.json)")
    return 0


if __name__ == "__main__":
    app.run(main)
