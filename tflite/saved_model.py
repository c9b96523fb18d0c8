"""SavedModel for TF Serving: `<output>/<model_name>/<version>/` with two signatures.

`serving_default`: float32 RGB images 0-255 [None, H, W, 3] -> probabilities, logits, top_k_classes,
top_k_probabilities. `serve_image_bytes`: encoded JPEG/PNG strings [None] -> the same outputs, with
decode, resize and centre crop inside the graph. Saved with `tf.saved_model.save` on a tf.Module
holding the Keras 3 model, so every variable is stored once (Keras' `model.export` stores them
twice, keras-team/keras#23553). BatchNormalization is folded into the conv before it (`fold_bn=True`,
see `tflite.fold_bn`): the variables of a SavedModel are not constants to TensorFlow's graph
optimizer, so it cannot fold BN itself, and an unfolded graph runs 4 element-wise ops per BN.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf

from keras_regnet.errors import ExportError
from keras_regnet.pretrained.eval_crop import decode_and_center_crop
from keras_regnet.presets import DEFAULT, EvalSettings

SIGNATURES = ("serving_default", "serve_image_bytes")


class ServingModule(tf.Module):
    """The Keras logits model's variables plus the two serving signatures.

    The module tracks the model's underlying tf.Variables (not the Keras model object): each one is
    then saved exactly once and bound to the graph the way TF1-style loaders (TF Serving,
    `saved_model_cli run`) restore them.
    """

    def __init__(self, model: Any, image_size: int, top_k: int = 5, fold_bn: bool = True,
                 settings: EvalSettings = DEFAULT) -> None:
        super().__init__(name="serving")
        if fold_bn:
            from tflite.fold_bn import fold_batch_norm

            model = fold_batch_norm(model)
        self.model_variables = [getattr(v, "value", v) for v in model.weights]
        self.image_size = int(image_size)
        self.settings = settings  # the weights' eval crop, applied by serve_image_bytes
        classes = int(model.output_shape[-1])
        self.top_k = min(int(top_k), classes)
        size = self.image_size
        call = _untracked_call(model)
        self.serve = tf.function(lambda images: self._outputs(call(images)), input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
        self.serve_image_bytes = tf.function(
            lambda image_bytes: self._outputs(call(self._decode(image_bytes))),
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])

    def _outputs(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = tf.cast(logits, tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        top = tf.math.top_k(probabilities, k=self.top_k)
        return {
            "probabilities": probabilities,
            "logits": logits,
            "top_k_classes": tf.cast(top.indices, tf.int32),
            "top_k_probabilities": top.values,
        }

    def _decode(self, image_bytes: tf.Tensor) -> tf.Tensor:
        return tf.map_fn(
            lambda encoded: decode_and_center_crop(encoded, self.image_size, self.settings), image_bytes,
            fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3], tf.float32),
        )


def _untracked_call(model: Any) -> Any:
    """A closure calling the model in inference mode, invisible to tf.Module's object tracking."""
    def call(images: tf.Tensor) -> tf.Tensor:
        return model(images, training=False)
    return call


def save(model: Any, directory: str, image_size: int, top_k: int = 5, fold_bn: bool = True,
         settings: EvalSettings = DEFAULT) -> list[str]:
    """Write the SavedModel into `directory` (a version folder); return the signature names."""
    module = ServingModule(model, image_size, top_k, fold_bn, settings)
    signatures = {
        "serving_default": module.serve.get_concrete_function(),
        "serve_image_bytes": module.serve_image_bytes.get_concrete_function(),
    }
    tf.saved_model.save(module, directory, signatures=signatures)
    check_graph(directory)
    return sorted(signatures)


def check_graph(directory: str) -> None:
    """Fail if the SavedModel holds XLA-only (_XlaMustCompile) functions or ops TF does not know."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    xla, unknown = set(), set()
    for meta in proto.meta_graphs:
        graph = meta.graph_def
        functions = {f.signature.name for f in graph.library.function}
        nodes = list(graph.node)
        for function in graph.library.function:
            if function.attr.get("_XlaMustCompile") and function.attr["_XlaMustCompile"].b:
                xla.add(function.signature.name)
            nodes.extend(function.node_def)
        for node in nodes:
            if node.attr.get("_XlaMustCompile") and node.attr["_XlaMustCompile"].b:
                xla.add(node.name)
            if op_def_registry.get(node.op) is None and node.op not in functions:
                unknown.add(node.op)
    if xla or unknown:
        raise ExportError(
            f"SavedModel {directory!r} is not servable by a stock TF Serving: "
            f"XLA-only functions {sorted(xla)}, unknown/custom ops {sorted(unknown)}"
        )


def rest_request(encoded_images: list[bytes], signature: str = "serve_image_bytes") -> dict[str, Any]:
    """A TF Serving REST `:predict` body (row format, binary inputs as {"b64": ...})."""
    return {
        "signature_name": signature,
        "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in encoded_images],
    }


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a float/uint8 RGB image in [0, 255]."""
    return tf.io.encode_png(np.clip(np.round(image), 0, 255).astype(np.uint8)).numpy()


def write_rest_request(path: str, images: np.ndarray, count: int = 2) -> dict[str, Any]:
    """Write an example REST request body with `count` real images as PNG; return it."""
    body = rest_request([encode_png(image) for image in images[:count]])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(body, f)
    return body


def directory_size(path: str) -> int:
    """Total bytes of the files under `path`."""
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(path) for name in files)


def batch_latency(functions: dict[str, Any], images: np.ndarray, batches: tuple[int, ...] = (1, 32),
                  runs: int = 20, warmup: int = 2) -> dict[str, dict[str, dict[str, float]]]:
    """{name: {batch: {median_ms, mean_ms, min_ms}}} of functions images -> outputs, interleaved.

    Each function is called with `images=` a float32 batch (images tiled to the batch size); calls of
    the functions alternate so that load from other processes hits them alike. Batches above 1 get
    max(2, runs // 8) timed runs.
    """
    if runs < 1:
        raise ExportError(f"latency runs must be >= 1, got {runs}")
    result: dict[str, dict[str, dict[str, float]]] = {name: {} for name in functions}
    for batch in batches:
        reps = -(-batch // len(images))
        x = tf.constant(np.concatenate([images] * reps)[:batch].astype(np.float32))
        for fn in functions.values():
            for _ in range(warmup):
                _first_output(fn(images=x)).numpy()
        times: dict[str, list[float]] = {name: [] for name in functions}
        for _ in range(runs if batch == 1 else max(2, runs // 8)):
            for name, fn in functions.items():
                start = time.perf_counter()
                _first_output(fn(images=x)).numpy()
                times[name].append((time.perf_counter() - start) * 1e3)
        for name, t in times.items():
            result[name][str(batch)] = {"median_ms": float(np.median(t)), "mean_ms": float(np.mean(t)),
                                        "min_ms": float(np.min(t))}
    return result


def _first_output(outputs: Any) -> tf.Tensor:
    return outputs["logits"] if isinstance(outputs, dict) else outputs
