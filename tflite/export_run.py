"""One export run: every requested artefact into a temp folder, scored, then renamed into place.

Layout of `output_dir` after a run:
  <model_name>/<version>/      SavedModel for TF Serving (model_base_path = output_dir/<model_name>), with
                               assets.extra/tf_serving_warmup_requests (tflite.serving_warmup)
  batching_parameters.txt      TF Serving --batching_parameters_file matching the warm-up batch sizes
  tflite/<model_name>_<format>.tflite   with LiteRT metadata and labels.txt (MediaPipe-loadable, tflite.metadata)
  onnx/<model_name>.onnx, onnx/<model_name>_int8.onnx   ONNX (dynamic batch) and its static int8 QDQ form
  rest_request.json            example TF Serving REST body (serve_image_bytes, b64 PNGs)
  class_names.json             class index -> name (from the run's class_names.json, or ImageNet's),
                               when known; the report's top-k examples use it
  report.json, report.md       the per-variant report
  spec.json                    the NetSpec exported
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_regnet import resolve_spec
from keras_regnet.dataclass_flags import flag_field as F
from keras_regnet.errors import ConfigError, DataError
from keras_regnet.spec import NetSpec
from tflite import metadata as tflite_metadata
from tflite import name_clash

name_clash.require_ours()

LOG = logging.getLogger("tflite")

FORMATS = ("saved_model", "float32", "float16", "dynamic_int8", "int8", "qat_int8", "pruned_int8", "onnx",
           "onnx_int8")
ONNX_FORMATS = ("onnx", "onnx_int8")  # need the `onnx` extra
FINE_TUNED = ("qat_int8", "pruned_int8")  # formats that fine-tune on labelled --qat_data
DEFAULT_FORMATS = ("saved_model", "float32", "float16", "dynamic_int8", "int8")


@dataclass(frozen=True)
class ExportConfig:
    """Everything an export needs; each field is a `python -m tflite.export` flag (default and help declared here)."""

    model: str = F("regnety_600mf", "Zoo name (e.g. regnety_600mf, RegNetX-400MF), a NetSpec JSON file or "
                   "inline JSON, or a built-in small model (regnety_digits, regnetx_digits).")
    weights: str | None = F(None, "imagenet (zoo models), a reference checkpoint (.safetensors, .npz, .pth), a "
                            ".keras file, a .weights.h5 file, or a training --model_dir (its newest *.keras, else "
                            "newest *.weights.h5). Unset: random weights (a warning is logged).")
    output_dir: str = F("export", "Where the artefacts go (written to a temp folder, then renamed).")
    formats: tuple[str, ...] = F(DEFAULT_FORMATS, f"Any of: {', '.join(FORMATS)}.")
    image_size: int | None = F(None, "Square input size of the exports (default: the weights' eval size: 384 for "
                               "a 384 px weight such as regnety_160.swag_ft_in1k, else 224).")
    classes: int | None = F(None, "Classifier size; unset: read from the checkpoint (1000 without weights).")
    calibration_data: str = F("digits:train", "Real images for int8 calibration and agreement: "
                              "digits[:train|:test|:all] (embedded), an image folder, or tfds:<name>[:<split>].")
    calibration_steps: int = F(100, "Images (batch 1) fed to the int8 representative dataset.")
    eval_data: str | None = F(None, "Labelled images for top-1/top-5 in the report (same syntax); unset: "
                              "agreement with the float model on the calibration images only.")
    eval_images: int = F(200, "At most this many images are scored per variant.")
    int8_io: str = F("uint8", "Input/output type of the int8 and qat_int8 models.", choices=("int8", "uint8"))
    model_name: str | None = F(None, "TF Serving model name (folder); default: the spec's name.")
    version: int = F(1, "TF Serving version folder.")
    top_k: int = F(5, "k of the top_k_classes / top_k_probabilities outputs.")
    latency_runs: int = F(30, "Timed LiteRT invokes per variant and thread count.")
    qat_data: str | None = F(None, "Labelled images for QAT fine-tuning; default: --calibration_data.")
    qat_epochs: int = F(2, "QAT fine-tuning epochs.")
    qat_learning_rate: float = F(1e-3, "QAT fine-tuning learning rate (SGD, Nesterov momentum 0.9).")
    qat_batch_size: int = F(32, "QAT fine-tuning batch size.")
    qat_images: int = F(1000, "At most this many QAT training images.")
    prune_sparsity: float = F(0.5, "pruned_int8: fraction of conv/dense kernel weights set to zero by TFMOT "
                              "magnitude pruning (polynomial schedule over the fine-tune).")
    prune_epochs: int = F(2, "pruned_int8: pruning fine-tune epochs (on --qat_data, at --qat_learning_rate).")
    overwrite: bool = F(False, "Replace an existing --output_dir.")

    def with_image_size(self) -> "ExportConfig":
        """This config with --image_size set: as given, else the eval size of --weights / --model's weights."""
        if self.image_size is not None:
            return self
        from keras_regnet.pretrained.tags import eval_settings

        return dataclasses.replace(self, image_size=eval_settings(self.model, self.weights).input_size)

    def validate(self) -> "ExportConfig":
        """Check the flags that need no I/O, naming the flag in every error."""
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"--formats has unknown entries {bad or '(empty)'}; allowed: {', '.join(FORMATS)}")
        for flag, value, minimum in (("image_size", self.image_size, 8), ("calibration_steps", self.calibration_steps, 1),
                                     ("eval_images", self.eval_images, 1), ("version", self.version, 1),
                                     ("top_k", self.top_k, 1), ("latency_runs", self.latency_runs, 1),
                                     ("qat_epochs", self.qat_epochs, 1), ("qat_batch_size", self.qat_batch_size, 1),
                                     ("qat_images", self.qat_images, 1), ("prune_epochs", self.prune_epochs, 1)):
            if not isinstance(value, int) or value < minimum:
                raise ConfigError(f"--{flag} must be an integer >= {minimum}, got {value!r}")
        if self.classes is not None and self.classes < 1:
            raise ConfigError(f"--classes must be >= 1 (or unset to read it from the checkpoint), got {self.classes}")
        if self.int8_io not in ("int8", "uint8"):
            raise ConfigError(f"--int8_io must be int8 or uint8, got {self.int8_io!r}")
        from tflite.prune import check_sparsity

        check_sparsity(self.prune_sparsity)
        if not self.qat_learning_rate > 0:
            raise ConfigError(f"--qat_learning_rate must be > 0, got {self.qat_learning_rate}")
        if any(f in ONNX_FORMATS for f in self.formats):
            from tflite.onnx_export import require

            require()
        if os.path.exists(self.output_dir) and not self.overwrite:
            raise ConfigError(f"--output_dir={self.output_dir!r} already exists; pass --overwrite to replace it")
        return self


def export_spec(config: ExportConfig) -> NetSpec:
    """The NetSpec --model names (keras_regnet's one resolver), refused when --image_size is below its stride."""
    spec = resolve_spec(config.model, label="--model")
    config = config.with_image_size()
    if config.image_size < spec.total_stride:
        raise ConfigError(f"--image_size={config.image_size} is below the network's total stride {spec.total_stride}")
    return spec


def run_export(config: ExportConfig) -> dict[str, Any]:
    """Produce, check and score every requested format; return the report dict."""
    from tflite import calibration, model_args, report

    config = config.with_image_size().validate()
    spec = export_spec(config)
    size = config.image_size
    # Data first: empty or unreadable sources fail before any conversion starts.
    calib = calibration.load_images(config.calibration_data, size, config.calibration_steps)
    evals = calibration.load_images(config.eval_data, size, config.eval_images, "--eval_data") if config.eval_data else None
    qat_set = None
    if any(fmt in config.formats for fmt in FINE_TUNED):
        qat_set = calibration.load_images(config.qat_data or config.calibration_data, size, config.qat_images, "--qat_data")
    from keras_regnet.pretrained.tags import eval_settings

    settings = eval_settings(config.model, config.weights)
    model, weights_path = model_args.load_float_model(spec, config.weights, config.classes)
    if weights_path is None:
        LOG.warning("no --weights given: exporting %s with random weights", spec.name)
    classes = int(model.output_shape[-1])
    names = model_args.class_names(weights_path, classes)
    if qat_set is not None:
        _check_labels(qat_set, classes, "--qat_data")
    if evals is not None and evals.labels is not None:
        _check_labels(evals, classes, "--eval_data")
    scored = evals or calib
    images = scored.images[: config.eval_images]
    labels = scored.labels[: config.eval_images] if scored.labels is not None and evals is not None else None
    reference_logits = model.predict(images, batch_size=16, verbose=0).astype(np.float64)
    reference = _softmax(reference_logits)
    name = (config.model_name or spec.name).replace(".", "_").replace("/", "_")
    parent = os.path.dirname(os.path.abspath(config.output_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(config.output_dir)}.tmp-", dir=parent)
    try:
        rows = [report.VariantReport("keras_float", "(reference)", int(model.count_params()) * 4)]
        report.score(rows[0], reference, reference, labels)
        for fmt in [f for f in FORMATS if f in config.formats]:
            LOG.info("exporting %s ...", fmt)
            if fmt == "saved_model":
                rows.append(_saved_model(model, staging, name, config, calib.images, images, reference, labels,
                                         reference_logits, settings))
            elif fmt in ONNX_FORMATS:
                rows.append(_onnx(model, staging, name, fmt, config, calib, images, reference, labels,
                                  reference_logits))
            else:
                rows.append(_tflite(model, spec, staging, name, fmt, config, calib, qat_set, images, reference, labels,
                                    tflite_metadata.classifier_info(name, fmt, size, classes, names, settings.describe(size))))
            LOG.info("%s: %.2f MB", fmt, rows[-1].size_bytes / 1e6)
        meta = {
            "model": spec.name, "spec": spec.to_dict(), "weights": weights_path, "image_size": size,
            "classes": classes, "scored_on": scored.source, "scored_images": int(len(images)),
            "labels": labels is not None, "calibration_data": calib.source,
            "calibration_images": int(len(calib)), "eval_settings": settings.to_dict(),
            "class_names": names is not None,
            "top_k_examples": top_k_examples(reference[:3], names, config.top_k),
        }
        if names is not None:
            _write(os.path.join(staging, "class_names.json"), json.dumps(names, indent=1) + "\n")
        _write(os.path.join(staging, "report.json"), report.to_json(rows, meta))
        table = report.to_markdown(rows)
        _write(os.path.join(staging, "report.md"), f"# Export report: {spec.name} at {size}x{size}\n\n{table}\n")
        _write(os.path.join(staging, "spec.json"), spec.to_json(indent=2))
        _publish(staging, config.output_dir, config.overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {**meta, "variants": rows, "table": table, "output_dir": config.output_dir}


def top_k_examples(probs: np.ndarray, names: list[str] | None, k: int) -> list[list[list[Any]]]:
    """[[class name (or id), probability] x k] per row: what a client shows for a prediction."""
    out = []
    for row in probs:
        order = np.argsort(-row)[:k]
        out.append([[names[i] if names is not None else int(i), round(float(row[i]), 6)] for i in order])
    return out


def _check_labels(data: Any, classes: int, flag: str) -> None:
    if data.labels is not None and len(data.labels) and int(data.labels.max()) >= classes:
        raise DataError(
            f"{flag}={data.source!r} has label {int(data.labels.max())} but the model has {classes} classes"
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _publish(staging: str, output_dir: str, overwrite: bool) -> None:
    """Rename the finished staging folder to output_dir (replacing it only with --overwrite)."""
    if os.path.exists(output_dir):
        if not overwrite:
            raise ConfigError(f"--output_dir={output_dir!r} already exists; pass --overwrite to replace it")
        old = f"{staging}.old"
        os.rename(output_dir, old)
        os.rename(staging, output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, output_dir)


def _saved_model(model: Any, staging: str, name: str, config: ExportConfig, calib_images: np.ndarray,
                 images: np.ndarray, reference: np.ndarray, labels: np.ndarray | None,
                 reference_logits: np.ndarray, settings: Any) -> Any:
    """Write, reload, score and time the SavedModel (BN folded, timed against the unfolded graph),
    with TF Serving warm-up requests and a batching configuration."""
    import tensorflow as tf

    from tflite import report, saved_model, serving_warmup

    directory = os.path.join(staging, name, str(config.version))
    signatures = saved_model.save(model, directory, config.image_size, config.top_k, settings=settings)
    if serving_warmup.available():
        serving_warmup.write_warmup(directory, calib_images[:max(serving_warmup.WARMUP_BATCH_SIZES)], name)
    else:
        LOG.warning("no TF Serving warm-up requests written: %s", serving_warmup.MISSING)
    _write(os.path.join(staging, serving_warmup.BATCHING_FILE), serving_warmup.batching_parameters())
    loaded = tf.saved_model.load(directory)
    serve = loaded.signatures["serving_default"]
    outputs = [serve(images=tf.constant(images[i:i + 32])) for i in range(0, len(images), 32)]
    probs = np.concatenate([o["probabilities"].numpy() for o in outputs])
    logits = np.concatenate([o["logits"].numpy() for o in outputs])
    saved_model.write_rest_request(os.path.join(staging, "rest_request.json"), images)
    row = report.VariantReport("saved_model", os.path.join(name, str(config.version)),
                               saved_model.directory_size(directory), signatures=signatures,
                               runtime=f"TensorFlow {tf.__version__}, BN folded")
    report.score(row, probs, reference, labels, logits, reference_logits)
    unfolded = saved_model.ServingModule(model, config.image_size, config.top_k, fold_bn=False).serve
    timed = saved_model.batch_latency({"folded": serve, "unfolded": unfolded}, images, runs=config.latency_runs)
    row.batch_latency_ms, row.unfolded_batch_latency_ms = timed["folded"], timed["unfolded"]
    return row


def _onnx(model: Any, staging: str, name: str, fmt: str, config: ExportConfig, calib: Any, images: np.ndarray,
          reference: np.ndarray, labels: np.ndarray | None, reference_logits: np.ndarray) -> Any:
    """Convert (BN folded) to ONNX, or quantize it to int8 QDQ; score and time with ONNX Runtime."""
    from tflite import onnx_export, report
    from tflite.fold_bn import fold_batch_norm

    os.makedirs(os.path.join(staging, "onnx"), exist_ok=True)
    float_relative = os.path.join("onnx", f"{name}.onnx")
    float_path = os.path.join(staging, float_relative)
    if not os.path.exists(float_path):
        with open(float_path, "wb") as f:
            f.write(onnx_export.convert(fold_batch_norm(model), config.image_size))
    relative, path = float_relative, float_path
    if fmt == "onnx_int8":
        relative = os.path.join("onnx", f"{name}_int8.onnx")
        path = os.path.join(staging, relative)
        onnx_export.quantize_int8(float_path, path, calib.images[:config.calibration_steps])
        if "onnx" not in config.formats:
            os.remove(float_path)
    with open(path, "rb") as f:
        model_bytes = f.read()
    row = report.VariantReport(fmt, relative, len(model_bytes), ops=onnx_export.op_types(model_bytes),
                               io_type="float32",
                               runtime=f"{onnx_export.runtime_version()}, opset {onnx_export.opset_of(model_bytes)}")
    out = onnx_export.predict(path, images)
    report.score(row, out["probabilities"], reference, labels, out["logits"], reference_logits)
    for threads in report.LATENCY_THREADS:
        row.latency_ms[str(threads)] = onnx_export.latency(path, images[0], threads, config.latency_runs)
    return row


def _tflite(model: Any, spec: Any, staging: str, name: str, fmt: str, config: ExportConfig, calib: Any,
            qat_set: Any, images: np.ndarray, reference: np.ndarray, labels: np.ndarray | None, info: Any) -> Any:
    """Convert one TFLite variant with its LiteRT metadata (tflite.metadata), write it, score it and time
    it at 1 and 2 threads."""
    from tflite import report, to_tflite
    from tflite.prune import gzip_size

    sparsity = None
    if fmt == "qat_int8":
        from tflite import qat

        result = qat.run_qat(model, spec, config.image_size, qat_set.images, qat_set.labels,
                             epochs=config.qat_epochs, learning_rate=config.qat_learning_rate,
                             batch_size=config.qat_batch_size, io_type=config.int8_io)
        flatbuffer = result.tflite
    elif fmt == "pruned_int8":
        from tflite import prune

        result = prune.run_pruning(model, spec, config.image_size, qat_set.images, qat_set.labels,
                                   sparsity=config.prune_sparsity, epochs=config.prune_epochs,
                                   learning_rate=config.qat_learning_rate, batch_size=config.qat_batch_size)
        flatbuffer = to_tflite.convert_model(result.model, config.image_size, "int8", config.int8_io,
                                           _representative(calib, config.calibration_steps))
        sparsity = result.sparsity
    else:
        flatbuffer = to_tflite.convert_model(model, config.image_size, fmt, config.int8_io,
                                           _representative(calib, config.calibration_steps) if fmt == "int8" else None)
    flatbuffer = tflite_metadata.populate(flatbuffer, info)
    relative = os.path.join("tflite", f"{name}_{fmt}.tflite")
    path = os.path.join(staging, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    row = report.VariantReport(fmt, relative, len(flatbuffer), ops=to_tflite.op_names(flatbuffer),
                               io_type=report.tflite_io_type(path), gzip_bytes=gzip_size(flatbuffer),
                               sparsity=sparsity)
    report.check_delegation(row, path, f"TFLite export {fmt!r} ({relative})")
    report.score(row, report.tflite_predict(path, images), reference, labels)
    for threads in report.LATENCY_THREADS:
        row.latency_ms[str(threads)] = report.latency(path, images[0], threads, config.latency_runs)
    row.delegate = report.delegate(path)
    return row


def _representative(calib: Any, steps: int) -> Any:
    """The int8 converter's representative dataset: real calibration images, batch 1."""
    def generate() -> Any:
        for image in calib.images[:steps]:
            yield [image[None].astype("float32")]

    return generate
