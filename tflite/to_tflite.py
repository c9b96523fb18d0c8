"""TFLite conversion at a static 1 x H x W x 3 input, builtin ops only, with a Flex-op guard.

XNNPACK delegates grouped convolutions only when shapes are static, so every variant is converted
from a concrete function with a fixed input shape. Variables are frozen into constants first (the
SavedModel conversion path keeps Keras 3 variables as resources, which LiteRT cannot run without an
initializer signature).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from keras_regnet.errors import ExportError

TFLITE_FORMATS = ("float32", "float16", "dynamic_int8", "int8", "qat_int8")
IO_TYPES = ("int8", "uint8")
_FLEX_PATTERNS = (r"TF Select ops: ([^\n]+)", r"Custom ops: ([^\n]+)", r"'tf\.(\w+)' op is neither")


class UnsupportedOpsError(ExportError):
    """The model needs ops outside the TFLite builtin set (Flex/Select TF ops or custom ops)."""

    def __init__(self, fmt: str, ops: list[str]) -> None:
        self.ops = ops
        super().__init__(
            f"TFLite export {fmt!r} needs ops that are not TFLite builtins: {', '.join(ops)}. "
            "Only builtin ops are allowed (Flex/Select TF ops need the TF runtime on the device); "
            "replace these ops in the model"
        )


def model_function(model: Any, image_size: int) -> Any:
    """tf.function: RGB 0-255 images [1, H, W, 3] -> softmax probabilities of the logits model."""

    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="images")])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.nn.softmax(model(images, training=False), axis=-1)}

    return serve


def convert_model(model: Any, image_size: int, fmt: str, io_type: str = "uint8",
                  representative: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
    """Convert a Keras 3 logits model to one TFLite variant (float32/float16/dynamic_int8/int8)."""
    return convert_function(model_function(model, image_size), model, fmt, io_type, representative)


def convert_function(fn: Any, trackable: Any, fmt: str, io_type: str = "uint8",
                     representative: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
    """Convert a static-shape tf.function to TFLite bytes; raise UnsupportedOpsError on non-builtins."""
    if fmt not in TFLITE_FORMATS:
        raise ExportError(f"unknown TFLite format {fmt!r}; allowed: {', '.join(TFLITE_FORMATS)}")
    if io_type not in IO_TYPES:
        raise ExportError(f"int8 input/output type must be one of {IO_TYPES}, got {io_type!r}")
    if fmt == "int8" and representative is None:
        raise ExportError("full-integer int8 needs a representative dataset of real images")
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], trackable)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if fmt != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if fmt == "int8":
        # QAT graphs carry their own FakeQuant ranges; restricting them to the INT8 op set makes
        # the converter ask for a representative dataset before it has looked at the graph.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if fmt in ("int8", "qat_int8"):
        converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
        if representative is not None:
            converter.representative_dataset = representative
    try:
        flatbuffer = converter.convert()
    except Exception as err:  # ConverterError, wrapped in several TF versions' types
        ops = unsupported_ops_from_message(str(err))
        if ops:
            raise UnsupportedOpsError(fmt, ops) from err
        raise
    check_builtin_only(flatbuffer, fmt)
    return flatbuffer


def unsupported_ops_from_message(message: str) -> list[str]:
    """Names of the Flex/custom ops a converter error message lists (empty if none)."""
    found: list[str] = []
    for pattern in _FLEX_PATTERNS:
        for match in re.findall(pattern, message):
            for name in match.split(","):
                name = name.strip()
                if name and name not in found:
                    found.append(name)
    return found


def op_names(flatbuffer: bytes) -> list[str]:
    """Sorted distinct op names of a TFLite model (custom ops show their custom code)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=flatbuffer,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return sorted({op["op_name"] for op in interpreter._get_ops_details()})


def check_builtin_only(flatbuffer: bytes, fmt: str) -> None:
    """Second line of the guard: no Flex or custom op made it into the flatbuffer."""
    bad = [name for name in op_names(flatbuffer) if name.startswith("Flex") or name == "CUSTOM"]
    if bad:
        raise UnsupportedOpsError(fmt, bad)
