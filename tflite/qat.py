"""Quantization-aware training with tensorflow-model-optimization, converted to int8 TFLite.

TFMOT works only with tf_keras and sets TF_USE_LEGACY_KERAS=1 when imported, so everything here
is imported lazily inside `run_qat`, and the environment variable is restored afterwards. The
Keras 3 model's weights go into a tf_keras twin (tflite/tf_keras_twin.py) built from the same NetSpec.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from keras_regnet.complexity import complexity
from keras_regnet.errors import ConfigError
from keras_regnet.spec import NetSpec
from keras_regnet.layer_records import CLASSIFIER

LOG = logging.getLogger("tflite")

# The paper's mobile regime tops out at 800MF; RegNetX-800MF counts 0.80 GF multiply-adds.
MOBILE_REGIME_MAX_FLOPS = 0.85e9


@dataclass(frozen=True)
class QatResult:
    """What QAT produced: the int8 TFLite flatbuffer and the fine-tuning curve."""

    tflite: bytes
    loss: list[float]
    accuracy: list[float]
    copied_layers: int


def check_mobile_regime(spec: NetSpec) -> bool:
    """Warn (and return False) when the model is above the 800MF mobile regime QAT is meant for."""
    flops = complexity(spec).flops
    if flops > MOBILE_REGIME_MAX_FLOPS:
        LOG.warning(
            "QAT is meant for the mobile regime (<= 800MF at 224 px); %s has %.2f GF. Proceeding anyway.",
            spec.name, flops / 1e9,
        )
        return False
    return True


@contextlib.contextmanager
def _legacy_keras_env() -> Iterator[None]:
    """Keep TFMOT's TF_USE_LEGACY_KERAS=1 from leaking into the rest of the process."""
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before


def _output_quantize_config_class() -> type:
    """A QuantizeConfig that quantizes only a layer's output (the SE Multiply)."""
    import tensorflow_model_optimization as tfmot

    quantizers = tfmot.quantization.keras.quantizers

    class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """8-bit moving-average output quantizer; no weights, no activations."""

        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list:
            return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                      narrow_range=False)]

        def get_config(self) -> dict:
            return {}

    return OutputQuantizeConfig


def quantize_twin(twin: Any) -> Any:
    """TFMOT QAT model of a tf_keras twin; the SE Multiply gets an output-only QuantizeConfig."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    qk = tfmot.quantization.keras
    config_cls = _output_quantize_config_class()

    def annotate(layer: Any) -> Any:
        clone = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, tf_keras.layers.Multiply):
            return qk.quantize_annotate_layer(clone, config_cls())
        return clone

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    annotated.set_weights(twin.get_weights())
    annotated = qk.quantize_annotate_model(annotated)
    scope = {"OutputQuantizeConfig": config_cls}
    with qk.quantize_scope(scope):
        qat_model = qk.quantize_apply(annotated)
    _freeze_like(twin, qat_model)
    _use_native_grouped_conv(qat_model)
    return qat_model


def _freeze_like(twin: Any, qat_model: Any) -> int:
    """Re-freeze the twin's frozen layers (the input normalization); TFMOT's cloning drops `trainable`.

    Left trainable, the normalization's tiny 1/(255*std) kernel gets the largest gradient of the
    whole model and fine-tuning wrecks the input scaling within a few steps.
    """
    frozen = {layer.name for layer in twin.layers if layer.weights and not layer.trainable}
    count = 0
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", layer)
        if inner.name in frozen:
            layer.trainable = False  # sets the inner layer's flag
            # QuantizeWrapper also keeps the quantized kernel in its own trainable list (the
            # inner layer no longer tracks it), whatever the flag says; move it to non-trainable.
            own = layer._trainable_weights
            for i in reversed(range(len(own))):
                if own[i].name.startswith(f"{inner.name}/"):
                    layer._non_trainable_weights.append(own.pop(i))
            count += 1
    return count


def _use_native_grouped_conv(model: Any) -> int:
    """Route tf_keras grouped convs through TF's native kernel instead of XLA (slow on CPU)."""
    import tf_keras

    patched = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, tf_keras.layers.Conv2D) and inner.groups > 1:
            inner._jit_compiled_convolution_op = inner.convolution_op
            patched += 1
    return patched


# TFMOT's activation quantizers track their ranges as EMAs with this decay from [-6, 6]; a short
# fine-tune moves them little, so they are first calibrated on real images (see calibrate_ranges).
_EMA_DECAY = 0.999
_ACTIVATION_RANGES = {f"{kind}_{end}" for kind in ("output", "post_activation", "pre_activation")
                      for end in ("min", "max")}


def _variable_kind(weight: Any) -> str:
    """'ema_range' (activation quantizers), 'set_range' (weights and the input layer) or 'other'.

    Weight quantizers take the last value of each weight's min/max and the input QuantizeLayer the
    running min/max of all values it saw, so their ranges after a training-mode pass are right as
    they are; only the EMA-tracked activation ranges need inverting.
    """
    short = weight.name.split("/")[-1].split(":")[0]
    if short in _ACTIVATION_RANGES:
        return "ema_range"
    if short.endswith(("_min", "_max")):
        return "set_range"
    return "other"


def calibrate_ranges(qat_model: Any, images: np.ndarray, passes: int = 3, batch_size: int = 64) -> int:
    """Set every activation quantizer's range to the batch range seen on real images; return the count.

    One training-mode forward pass updates each EMA range r to d*r + (1-d)*b with the batch range b,
    so b = (r' - d*r) / (1-d) recovers it exactly; the passes let downstream ranges see calibrated
    inputs. Weight and input ranges are kept as the passes set them (before any training-mode pass
    they are placeholders, e.g. [0, 0] for the input, which zero the model in inference mode). Every
    other variable (BN statistics, step counters) is restored afterwards.
    """
    kinds = [(w, _variable_kind(w)) for w in qat_model.weights]
    ranges = [w for w, kind in kinds if kind == "ema_range"]
    others = [w for w, kind in kinds if kind == "other"]
    saved = [w.numpy() for w in others]
    sample = images[:batch_size].astype("float32")
    for _ in range(passes):
        before = [w.numpy() for w in ranges]
        qat_model(sample, training=True)
        for w, old in zip(ranges, before):
            w.assign((w.numpy() - _EMA_DECAY * old) / (1.0 - _EMA_DECAY))
    for w, value in zip(others, saved):
        w.assign(value)
    return len(ranges) + sum(kind == "set_range" for _, kind in kinds)


def fine_tune(qat_model: Any, images: np.ndarray, labels: np.ndarray, epochs: int, learning_rate: float,
              batch_size: int, seed: int = 0, callbacks: list | None = None) -> Any:
    """A few epochs of SGD (Nesterov momentum 0.9) at a low LR on labelled images (QAT, pruning)."""
    import tf_keras

    qat_model.compile(
        optimizer=tf_keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    order = np.random.default_rng(seed).permutation(len(images))
    return qat_model.fit(images[order], labels[order], batch_size=batch_size, epochs=epochs, verbose=2,
                         callbacks=callbacks)


def convert_qat(qat_model: Any, image_size: int, io_type: str) -> bytes:
    """Full-integer TFLite from the QAT model at a static 1 x H x W x 3 input, builtin ops only."""
    import tensorflow as tf

    from tflite.to_tflite import convert_function

    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="images")])
    def serve(images: Any) -> Any:
        return {"probabilities": qat_model(images, training=False)}

    return convert_function(serve, qat_model, "qat_int8", io_type=io_type)


def run_qat(model: Any, spec: NetSpec, image_size: int, images: np.ndarray, labels: np.ndarray, *,
            epochs: int = 2, learning_rate: float = 1e-3, batch_size: int = 32,
            io_type: str = "uint8") -> QatResult:
    """Keras 3 model -> tf_keras twin -> TFMOT QAT fine-tuning -> int8 TFLite bytes."""
    if labels is None or len(labels) != len(images) or not len(images):
        raise ConfigError("QAT needs labelled images; the QAT data gave none (use a labelled folder or digits)")
    check_mobile_regime(spec)
    classes = int(model.get_layer(CLASSIFIER).units)
    with _legacy_keras_env():
        from tflite.tf_keras_twin import build_twin, copy_weights

        twin = build_twin(spec, image_size, classes, classifier_activation="softmax")
        copied = copy_weights(model, twin)
        qat_model = quantize_twin(twin)
        calibrate_ranges(qat_model, images)
        history = fine_tune(qat_model, images.astype("float32"), labels.astype("int32"), epochs,
                            learning_rate, batch_size)
        flatbuffer = convert_qat(qat_model, image_size, io_type)
    return QatResult(flatbuffer, [float(v) for v in history.history["loss"]],
                     [float(v) for v in history.history["accuracy"]], copied)


def fine_tune_float_twin(model: Any, spec: NetSpec, image_size: int, images: np.ndarray, labels: np.ndarray, *,
                         epochs: int = 2, learning_rate: float = 1e-3, batch_size: int = 32) -> Any:
    """QAT's control: the same fine-tuning of the same twin without fake quantization (tf_keras model).

    QAT also trains; on a briefly trained float model that extra training alone raises accuracy, so
    the quantization cost is QAT's accuracy against this control, not against the starting model.
    """
    classes = int(model.get_layer(CLASSIFIER).units)
    with _legacy_keras_env():
        from tflite.tf_keras_twin import build_twin, copy_weights

        twin = build_twin(spec, image_size, classes, classifier_activation="softmax")
        copy_weights(model, twin)
        _use_native_grouped_conv(twin)
        fine_tune(twin, images.astype("float32"), labels.astype("int32"), epochs, learning_rate, batch_size)
    return twin
