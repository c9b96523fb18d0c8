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

from absl import app, flags  # noqa: E402

from keras_regnet import cli_help, dataclass_flags  # noqa: E402
from keras_regnet.errors import cli_boundary  # noqa: E402
from tflite.export_run import ExportConfig  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One flag per ExportConfig field; defined when the CLI runs, so importing this module defines none."""
    dataclass_flags.define_flags(ExportConfig, flag_values)


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> ExportConfig:
    """ExportConfig from the parsed absl flags."""
    return dataclass_flags.from_flags(ExportConfig, flag_values)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    logging.getLogger("tflite").setLevel(logging.INFO)  # our progress lines on
    from tflite.export_run import run_export

    result = run_export(config_from_flags())
    print(result["table"])
    print(f"\nwrote {os.path.abspath(result['output_dir'])} (report.json, report.md, rest_request.json)")
    return 0


if __name__ == "__main__":
    define_flags()
    cli_help.run(cli_boundary(main, exit_code=1))
