"""Magnitude pruning with tensorflow-model-optimization, for smaller (compressed) int8 downloads.

Like QAT, TFMOT's pruning needs tf_keras: the Keras 3 weights go into the tf_keras twin, every conv
and dense kernel except the frozen input normalization is pruned to `sparsity` by a polynomial
schedule during a short fine-tune, the pruning wrappers are stripped, and the pruned weights come
back into a copy of the Keras 3 model, which then exports like any other (full-integer int8 here).
Dense TFLite kernels do not run faster on zeros; what pruning buys is a smaller compressed file.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_regnet.errors import ConfigError
from keras_regnet.spec import NetSpec
from keras_regnet.layer_records import CLASSIFIER


@dataclass(frozen=True)
class PruneResult:
    """The pruned Keras 3 model, its measured kernel sparsity and the fine-tuning accuracy curve."""

    model: Any
    sparsity: float
    accuracy: list[float]


def check_sparsity(sparsity: float) -> float:
    """The target fraction of zero kernel weights must lie in [0, 1)."""
    if not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"--prune_sparsity must be in [0, 1), got {sparsity!r}")
    return float(sparsity)


def kernel_sparsity(model: Any) -> float:
    """Fraction of exactly-zero weights over all conv/dense kernels (biases, BN and the normalization excluded)."""
    zeros = total = 0
    for layer in model.layers:
        if layer.name == "preprocessing":
            continue
        for weight in layer.weights:
            if weight.name.split("/")[-1].split(":")[0] == "kernel" and len(weight.shape) >= 2:
                values = np.asarray(weight)
                zeros += int(np.count_nonzero(values == 0))
                total += values.size
    return zeros / total if total else 0.0


def gzip_size(data: bytes) -> int:
    """Bytes after gzip -9: what a download of the model costs."""
    return len(gzip.compress(data, compresslevel=9))


def run_pruning(model: Any, spec: NetSpec, image_size: int, images: np.ndarray, labels: np.ndarray, *,
                sparsity: float = 0.5, epochs: int = 2, learning_rate: float = 1e-3,
                batch_size: int = 32) -> PruneResult:
    """Keras 3 model -> tf_keras twin -> magnitude pruning fine-tune -> pruned Keras 3 copy."""
    import keras

    from tflite.qat import _legacy_keras_env, _use_native_grouped_conv, fine_tune

    check_sparsity(sparsity)
    if labels is None or len(labels) != len(images) or not len(images):
        raise ConfigError("pruning needs labelled images; the data gave none (use a labelled folder or digits)")
    classes = int(model.get_layer(CLASSIFIER).units)
    with _legacy_keras_env():
        import tensorflow_model_optimization as tfmot
        import tf_keras

        from tflite.tf_keras_twin import build_twin, copy_weights

        twin = build_twin(spec, image_size, classes, classifier_activation="softmax")
        copy_weights(model, twin)
        steps = epochs * int(np.ceil(len(images) / batch_size))
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0, end_step=max(1, steps - 1), frequency=1)

        def wrap(layer: Any) -> Any:
            clone = layer.__class__.from_config(layer.get_config())
            if isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)) and layer.name != "preprocessing":
                return tfmot.sparsity.keras.prune_low_magnitude(clone, pruning_schedule=schedule)
            return clone

        pruned = tf_keras.models.clone_model(twin, clone_function=wrap)
        for layer in pruned.layers:
            source = twin.get_layer(getattr(layer, "layer", layer).name)
            inner = getattr(layer, "layer", layer)
            inner.set_weights(source.get_weights())
        _use_native_grouped_conv(pruned)
        history = fine_tune(pruned, images.astype("float32"), labels.astype("int32"), epochs, learning_rate,
                            batch_size, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(pruned)
        result = keras.models.clone_model(model)
        by_name = {layer.name: layer for layer in stripped.layers}
        for layer in result.layers:
            if layer.weights and layer.name in by_name:
                layer.set_weights(by_name[layer.name].get_weights())
    return PruneResult(result, kernel_sparsity(result), [float(a) for a in history.history["accuracy"]])
