"""TF Serving warm-up requests and a batching configuration for the exported SavedModel.

TF Serving replays `<version>/assets.extra/tf_serving_warmup_requests` (a TFRecord of
`PredictionLog` protos) when it loads a version, so the first user request does not pay for graph
initialisation. We write one request per signature and batch size of `WARMUP_BATCH_SIZES`, made of
real calibration images (float tensors for `serving_default`, PNG bytes for `serve_image_bytes`);
the same batch sizes are the `allowed_batch_sizes` of `batching_parameters.txt`, so every padded
batch shape the batcher produces is warmed. Needs `tensorflow-serving-api` (the `tflite` extra).
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

from keras_regnet.errors import ExportError

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
BATCHING_FILE = "batching_parameters.txt"
WARMUP_BATCH_SIZES = (1, 4, 16)
BATCH_TIMEOUT_MICROS = 2000  # how long the batcher waits to fill a batch


MISSING = ("TF Serving warm-up requests need tensorflow-serving-api: pip install 'keras-regnet[tflite]' "
           "(or tensorflow-serving-api==2.21.0)")


def available() -> bool:
    """Whether tensorflow-serving-api (the PredictionLog protos) is installed."""
    try:
        import tensorflow_serving.apis.prediction_log_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    """ExportError naming the package when tensorflow-serving-api is missing."""
    if not available():
        raise ExportError(MISSING)


def requests(images: np.ndarray, model_name: str,
             batch_sizes: tuple[int, ...] = WARMUP_BATCH_SIZES) -> Iterator[Any]:
    """PredictionLog protos: per batch size, one float request and one image-bytes request."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from tflite.saved_model import encode_png

    if len(images) == 0:
        raise ExportError("TF Serving warm-up needs at least one calibration image")
    for batch in batch_sizes:
        rows = np.resize(np.arange(len(images)), batch)  # repeat the images when there are fewer
        chosen = images[rows].astype(np.float32)
        inputs = {"serving_default": ("images", tf.make_tensor_proto(chosen)),
                  "serve_image_bytes": ("image_bytes", tf.make_tensor_proto(
                      [encode_png(image) for image in chosen], dtype=tf.string))}
        for signature, (key, tensor) in inputs.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            request.inputs[key].CopyFrom(tensor)
            yield prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def write_warmup(version_dir: str, images: np.ndarray, model_name: str,
                 batch_sizes: tuple[int, ...] = WARMUP_BATCH_SIZES) -> str:
    """Write the warm-up TFRecord into the SavedModel version folder; return its path."""
    import tensorflow as tf

    require()
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in requests(images, model_name, batch_sizes):
            writer.write(log.SerializeToString())
    return path


def read_warmup(path: str) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(signature name, inputs as arrays) of every request in a warm-up file, in order."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    out = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        out.append((request.model_spec.signature_name,
                    {key: tf.make_ndarray(tensor) for key, tensor in request.inputs.items()}))
    return out


def batching_parameters(batch_sizes: tuple[int, ...] = WARMUP_BATCH_SIZES, threads: int | None = None) -> str:
    """A `--batching_parameters_file` for tensorflow_model_server, with the flags that use it."""
    threads = threads or max(1, os.cpu_count() or 1)
    allowed = "\n".join(f"allowed_batch_sizes: {size}" for size in sorted(batch_sizes))
    return f"""\
# TF Serving batching for this model (text-format BatchingParameters). Use it with:
#   tensorflow_model_server --rest_api_port=8501 --model_name=<model_name> \\
#     --model_base_path=<export>/<model_name> --enable_batching=true \\
#     --batching_parameters_file=<export>/{BATCHING_FILE}
# The warm-up requests in <version>/{WARMUP_FILE} cover every allowed batch size.
max_batch_size {{ value: {max(batch_sizes)} }}
batch_timeout_micros {{ value: {BATCH_TIMEOUT_MICROS} }}
max_enqueued_batches {{ value: 100 }}
num_batch_threads {{ value: {threads} }}
{allowed}
pad_variable_length_inputs: false
"""
