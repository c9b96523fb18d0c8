"""Export benchmark: int8 vs float32 TFLite latency, PTQ/QAT accuracy drop, RegNetY vs MobileNetV2.

Measured side by side in one run (LiteRT interpreter, XNNPACK, batch 1):
  1. RegNetY-600MF and RegNetX-400MF at --image_size (224): float32 and int8 latency (bar: int8
     >= 1.5x faster than float32).
  2. The same two models trained briefly on the embedded digits at --train_image_size (held-out:
     digits:test) with the training pipeline (training.api.train): float accuracy, PTQ int8 and QAT
     int8 accuracy, drops in points. QAT also trains, so its drop is measured against a control,
     the float twin fine-tuned exactly like QAT without fake quantization (bar: QAT drop <= 1
     point). Training at 224 on 2 shared CPU cores would take hours, hence the smaller size.
  3. RegNetY-600MF int8 vs keras.applications MobileNetV2 (alpha 1.0, weights=None) int8 exported
     the same way (the paper compares them at similar flops).
The last line prints the ratios.

    PYTHONPATH=. python benchmarks/tflite_export.py            # defaults: the issue's setting
    PYTHONPATH=. python benchmarks/tflite_export.py --train_epochs=1 --latency_runs=10   # quicker
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["regnety_600mf", "regnetx_400mf"], "Zoo models to benchmark.")
flags.DEFINE_integer("image_size", 224, "Latency input size.")
flags.DEFINE_integer("train_image_size", 64, "Size for the short digits training and the accuracy drops.")
flags.DEFINE_integer("train_epochs", 10, "Epochs of the short float training on digits:train.")
flags.DEFINE_integer("qat_epochs", 2, "QAT fine-tuning epochs.")
flags.DEFINE_integer("calibration_steps", 100, "Representative images for int8 calibration.")
flags.DEFINE_integer("latency_runs", 30, "Timed invokes per variant and thread count.")
flags.DEFINE_bool("mobilenet", True, "Also measure keras.applications MobileNetV2 int8.")
flags.DEFINE_bool("accuracy", True, "Run the short training + PTQ/QAT accuracy part.")
flags.DEFINE_string("json_out", None, "Optional path for the measured figures as JSON.")


def _write_tflite(flatbuffer: bytes, tag: str) -> str:
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"bench_{os.getpid()}_{tag}.tflite")
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path


def _representative(images: np.ndarray, steps: int):
    def gen():
        for image in images[:steps]:
            yield [image[None].astype("float32")]
    return gen


def latency_table(models: dict, size: int, calib: np.ndarray) -> dict:
    """float32 and int8 latency (ms) at 1 and 2 threads; all variants' invokes interleaved."""
    from tflite import report
    from tflite import to_tflite

    paths, keys = [], []
    for tag, model in models.items():
        for fmt in ("float32", "int8"):
            rep = _representative(calib, FLAGS.calibration_steps) if fmt == "int8" else None
            paths.append(_write_tflite(to_tflite.convert_model(model, size, fmt, "uint8", rep), f"{tag}_{fmt}"))
            keys.append((tag, fmt))
    out: dict = {tag: {fmt: {"size_mb": os.path.getsize(p) / 1e6} for (t, fmt), p in zip(keys, paths) if t == tag}
                 for tag in models}
    for threads in report.LATENCY_THREADS:
        for (tag, fmt), lat in zip(keys, report.latency_interleaved(paths, calib[0], threads, FLAGS.latency_runs)):
            out[tag][fmt][str(threads)] = lat
    for (tag, fmt), path in zip(keys, paths):
        os.remove(path)
        print(f"  {tag} {fmt}: " + ", ".join(
            f"{t} thr mean {out[tag][fmt][str(t)]['mean_ms']:.1f} / p90 {out[tag][fmt][str(t)]['p90_ms']:.1f} ms"
            for t in report.LATENCY_THREADS), flush=True)
    return out


def accuracy_drops(name: str) -> dict:
    """Short float training on digits, then PTQ int8 and QAT int8 accuracy on digits:test."""
    import tempfile

    from keras_regnet import resolve_spec
    from tflite import qat, report
    from tflite import model_args
    from tflite import to_tflite
    from tflite.calibration import load_images
    from training.api import train as train_model

    size = FLAGS.train_image_size
    spec = resolve_spec(name, label="--models")
    train, test = load_images("digits:train", size), load_images("digits:test", size)
    start = time.time()
    with tempfile.TemporaryDirectory() as model_dir:  # the real training pipeline, as users train
        train_model(name, epochs=FLAGS.train_epochs, image_size=size, batch_size=64, warmup_epochs=0.5,
                    model_dir=model_dir)
        model, _ = model_args.load_float_model(spec, model_dir, classes=10)
    float_acc = report.topk_accuracy(model.predict(test.images, verbose=0), test.labels, 1)
    print(f"  {name} float trained {time.time() - start:.0f}s: test top-1 {100 * float_acc:.1f}%", flush=True)
    rep = _representative(train.images, FLAGS.calibration_steps)
    ptq_path = _write_tflite(to_tflite.convert_model(model, size, "int8", "uint8", rep), f"{name}_ptq")
    ptq_acc = report.topk_accuracy(report.tflite_predict(ptq_path, test.images), test.labels, 1)
    start = time.time()
    result = qat.run_qat(model, spec, size, train.images, train.labels, epochs=FLAGS.qat_epochs, learning_rate=1e-3)
    qat_path = _write_tflite(result.tflite, f"{name}_qat")
    qat_acc = report.topk_accuracy(report.tflite_predict(qat_path, test.images), test.labels, 1)
    qat_seconds = time.time() - start
    control = qat.fine_tune_float_twin(model, spec, size, train.images, train.labels, epochs=FLAGS.qat_epochs,
                                       learning_rate=1e-3)
    control_acc = report.topk_accuracy(control.predict(test.images, verbose=0), test.labels, 1)
    print(f"  {name} PTQ int8 {100 * ptq_acc:.1f}%, QAT int8 {100 * qat_acc:.1f}% (QAT {qat_seconds:.0f}s), "
          f"float fine-tuned like QAT (control) {100 * control_acc:.1f}%", flush=True)
    for path in (ptq_path, qat_path):
        os.remove(path)
    return {"float_top1": float_acc, "ptq_int8_top1": ptq_acc, "qat_int8_top1": qat_acc,
            "float_fine_tuned_top1": control_acc, "ptq_drop_points": 100 * (float_acc - ptq_acc),
            "qat_drop_points": 100 * (control_acc - qat_acc),
            "qat_drop_vs_start_points": 100 * (float_acc - qat_acc)}


def mobilenet_v2(size: int):
    """keras.applications MobileNetV2 (1.0) taking RGB 0-255, logits out, random weights (no download)."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    net = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=1.0, weights=None,
                                         classifier_activation=None)
    return keras.Model(inputs, net(x), name="mobilenetv2_1.0")


def main(argv: list[str]) -> None:
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)
    from keras_regnet import build, resolve_spec
    from tflite.calibration import load_images

    size = FLAGS.image_size
    calib = load_images("digits:train", size, FLAGS.calibration_steps).images
    results: dict = {"image_size": size, "latency": {}, "accuracy": {}}
    print(f"latency at {size}x{size} (LiteRT + XNNPACK, batch 1, {FLAGS.latency_runs} interleaved runs)")
    models = {name: build(resolve_spec(name, label="--models"), input_shape=(None, None, 3), classifier_activation=None)
              for name in FLAGS.models}
    if FLAGS.mobilenet:
        models["mobilenetv2_1.0"] = mobilenet_v2(size)
    results["latency"] = latency_table(models, size, calib)
    if FLAGS.accuracy:
        print(f"accuracy after {FLAGS.train_epochs} epochs on digits:train at {FLAGS.train_image_size}px "
              f"(held out: digits:test)")
        for name in FLAGS.models:
            results["accuracy"][name] = accuracy_drops(name)
    ratios = []
    for name in FLAGS.models:
        lat = results["latency"][name]
        for t in ("1", "2"):
            ratios.append(f"{name} float32/int8 {t}thr {lat['float32'][t]['mean_ms'] / lat['int8'][t]['mean_ms']:.2f}x")
        if name in results["accuracy"]:
            acc = results["accuracy"][name]
            ratios.append(f"{name} drop PTQ {acc['ptq_drop_points']:+.1f} pt, QAT vs control "
                          f"{acc['qat_drop_points']:+.1f} pt (vs start {acc['qat_drop_vs_start_points']:+.1f} pt)")
    if FLAGS.mobilenet and "regnety_600mf" in results["latency"]:
        for t in ("1", "2"):
            ratio = (results["latency"]["regnety_600mf"]["int8"][t]["mean_ms"]
                     / results["latency"]["mobilenetv2_1.0"]["int8"][t]["mean_ms"])
            ratios.append(f"RegNetY-600MF/MobileNetV2 int8 latency {t}thr {ratio:.2f}x")
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    print("ratios: " + "; ".join(ratios))


if __name__ == "__main__":
    app.run(main)
