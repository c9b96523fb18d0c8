"""ONNX export through tf2onnx, run and timed with ONNX Runtime; static int8 QDQ quantization.

The graph takes float32 RGB 0-255 images `[batch, H, W, 3]` (the batch dimension is dynamic, named
"batch") and returns `logits` and `probabilities`, like the SavedModel's `serving_default`. It is
converted from a tf.function calling the Keras model (BN already folded by the caller, see
`tflite.fold_bn`), at opset `OPSET`, with tf2onnx's memory kept near the model's size
(`tflite.tf2onnx_memory`). `onnx_int8` is ONNX Runtime's static QDQ quantization
(per-channel int8 weights, uint8 activations, MinMax calibration on real images), the form ONNX
Runtime's CPU kernels and TensorRT/OpenVINO consume. Needs the `onnx` extra
(`pip install keras-regnet[onnx]`: tf2onnx, onnx, onnxruntime).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

import numpy as np

from keras_regnet.errors import ExportError
from tflite.tf2onnx_memory import bounded_memory

OPSET = 17
INPUT_NAME = "images"
OUTPUTS = ("logits", "probabilities")
BATCH_DIM = "batch"


def require() -> None:
    """Raise a ValueError naming the extra when tf2onnx / onnx / onnxruntime are missing."""
    missing, first = [], None
    for module in ("tf2onnx", "onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError as err:
            missing.append(module)
            first = first or err
    if missing:
        raise ExportError(f"--formats=onnx needs {', '.join(missing)}: pip install 'keras-regnet[onnx]'") from first


def serving_function(model: Any, image_size: int) -> Any:
    """tf.function: images [None, H, W, 3] RGB 0-255 -> {logits, probabilities}."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name=INPUT_NAME)])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = tf.cast(model(images, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    return serve


def convert(model: Any, image_size: int, opset: int = OPSET) -> bytes:
    """Serialized ONNX model of a Keras logits model, dynamic batch, checked by onnx.checker."""
    require()
    import onnx
    import tf2onnx

    if not isinstance(opset, int) or opset < 13:
        raise ExportError(f"ONNX opset must be an integer >= 13, got {opset!r}")
    fn = serving_function(model, image_size)
    try:
        with bounded_memory():
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    except Exception as err:  # an optimizer raised: tf2onnx's own path skips it (at ~4x the memory)
        logging.getLogger(__name__).warning("tf2onnx failed with bounded memory (%s); converting again with "
                                            "its per-pass graph copies", err)
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    for value in list(proto.graph.input) + list(proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = BATCH_DIM
    names = [o.name for o in proto.graph.output]
    if sorted(names) != sorted(OUTPUTS) or [i.name for i in proto.graph.input] != [INPUT_NAME]:
        raise ExportError(f"unexpected ONNX graph signature: inputs {[i.name for i in proto.graph.input]}, "
                          f"outputs {names}; expected {INPUT_NAME!r} -> {OUTPUTS}")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def op_types(model_bytes: bytes) -> list[str]:
    """Sorted distinct op types of an ONNX model."""
    import onnx

    return sorted({node.op_type for node in onnx.load_from_string(model_bytes).graph.node})


def opset_of(model_bytes: bytes) -> int:
    """The default-domain opset an ONNX model declares."""
    import onnx

    return next(int(o.version) for o in onnx.load_from_string(model_bytes).opset_import if o.domain in ("", "ai.onnx"))


def session(path: str, threads: int, spinning: bool = True) -> Any:
    """ONNX Runtime CPU session with `threads` intra-op threads and full graph optimization.

    spinning=False stops idle worker threads from busy-waiting (ONNX Runtime spins by default, which
    is fastest on an idle machine and much slower on one shared with other processes).
    """
    import onnxruntime as ort

    if not isinstance(threads, int) or threads < 1:
        raise ExportError(f"ONNX Runtime threads must be an integer >= 1, got {threads!r}")
    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def predict(path: str, images: np.ndarray, threads: int = 2, batch_size: int = 32) -> dict[str, np.ndarray]:
    """{logits, probabilities} of an ONNX model on float images, in batches."""
    sess = session(path, threads)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
    for start in range(0, len(images), batch_size):
        out = sess.run(list(OUTPUTS), {INPUT_NAME: images[start:start + batch_size].astype(np.float32)})
        for name, value in zip(OUTPUTS, out):
            parts[name].append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def latency(path: str, image: np.ndarray, threads: int, runs: int = 30, warmup: int = 3,
            spinning: bool = True) -> dict[str, float]:
    """Mean and p90 milliseconds per batch-1 run on one real image."""
    if runs < 1:
        raise ExportError(f"latency runs must be >= 1, got {runs}")
    sess = session(path, threads, spinning)
    feed = {INPUT_NAME: image[None].astype(np.float32)}
    for _ in range(warmup):
        sess.run(["logits"], feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(["logits"], feed)
        times.append((time.perf_counter() - start) * 1e3)
    return {"mean_ms": float(np.mean(times)), "p90_ms": float(np.percentile(times, 90))}


def quantize_int8(float_path: str, output_path: str, calibration: Iterable[np.ndarray]) -> bytes:
    """Static QDQ int8 model (per-channel weights, uint8 activations) calibrated on real images."""
    require()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    images = [np.asarray(image, np.float32) for image in calibration]
    if not images:
        raise ExportError("ONNX int8 quantization needs at least one calibration image, got none")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self._it, None)
            return None if image is None else {INPUT_NAME: image[None]}

    quantize_static(float_path, output_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    with open(output_path, "rb") as f:
        return f.read()


def runtime_version() -> str:
    """'onnxruntime <version>' for the report."""
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"
