"""Run in its own process by tests/tflite/test_qat.py as `python -m tests.helpers.qat_probe` (TFMOT flips TF_USE_LEGACY_KERAS): QAT model checks as JSON.

Builds a tiny RegNetY with non-trivial BN statistics, its tf_keras twin and the TFMOT QAT model,
calibrates the ranges on digits, fine-tunes one short epoch, and prints what the test asserts on.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_regnet import build, make_spec  # noqa: E402
from tflite import qat  # noqa: E402
from tflite.calibration import digits_rgb  # noqa: E402

SIZE = 16


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def main() -> None:
    import keras

    keras.utils.set_random_seed(0)
    spec = make_spec([1, 1], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=16,
                     stem_stride=1, name="probe")
    model = build(spec, input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if "bn" in layer.name:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta + 0.1, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, var.shape)])
    images, labels = digits_rgb(SIZE, "train")
    images, labels = images[:128], labels[:128]
    out = {}
    with qat._legacy_keras_env():
        from tflite.tf_keras_twin import build_twin, copy_weights

        twin = build_twin(spec, SIZE, 10, classifier_activation=None)
        copy_weights(model, twin)
        reference = twin(images, training=False).numpy()
        qat_model = qat.quantize_twin(twin)
        out["trainable_preprocessing"] = [w.name for w in qat_model.trainable_weights if "preprocessing" in w.name]
        out["calibrated"] = qat.calibrate_ranges(qat_model, images)
        input_range = [float(w.numpy()) for w in qat_model.get_layer("quantize_layer").weights[:2]]
        out["input_range"] = input_range
        out["image_range"] = [float(images.min()), float(images.max())]
        out["error_calibrated"] = relative_error(qat_model(images, training=False).numpy(), reference)
        kernel = next(w for w in qat_model.weights if w.name.startswith("preprocessing/depthwise_kernel"))
        before = kernel.numpy()
        qat.fine_tune(qat_model, images, labels.astype("int32"), epochs=1, learning_rate=1e-3, batch_size=32)
        out["preprocessing_change"] = float(np.abs(kernel.numpy() - before).max())
    print("QAT_PROBE " + json.dumps(out))


if __name__ == "__main__":
    main()
