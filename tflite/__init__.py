"""keras-regnet's export package: `python -m tflite.export` (SavedModel, TFLite, ONNX) and `tflite.predict`.

Not PyPI's `tflite` flatbuffer parser, which uses the same top-level name: `tflite.name_clash`
warns when both are installed, and our CLIs stop with advice when the parser has replaced this file.
"""

__keras_regnet__ = True

from tflite import name_clash as _name_clash  # noqa: E402

_name_clash.warn_if_installed()
