"""Measure one network's inference time: LiteRT (XNNPACK, batch 1) and TensorFlow (batch 64, CPU).

The model is built from its spec with random weights (latency does not depend on their values),
exported in memory to static-shape builtin-only TFLite through `tflite.to_tflite` (float32, and int8
calibrated on a few real images), and timed with warm-up and repeats until the relative standard
error of the median time is at most `target_rse` (or a repeat/time cap is hit; the record says which).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from keras_regnet.errors import ConfigError

LATENCY_FORMATS = ("float32", "int8")


@dataclass(frozen=True)
class TimingPolicy:
    """How long to time: warm-up runs, then min..max runs until the median's relative std error <= target."""

    warmup: int = 5
    min_runs: int = 10
    max_runs: int = 300
    max_seconds: float = 20.0
    target_rse: float = 0.02

    def __post_init__(self) -> None:
        if not (0 <= self.warmup and 2 <= self.min_runs <= self.max_runs and self.max_seconds > 0
                and 0 < self.target_rse < 1):
            raise ConfigError(f"timing policy needs warmup >= 0, 2 <= min_runs <= max_runs, max_seconds > 0 "
                              f"and 0 < target_rse < 1, got {asdict(self)}")


def summarize_times(times_ms: list[float], target_rse: float, cpu_ms: list[float] | None = None) -> dict[str, Any]:
    """Median/mean/p90 ms, coefficients of variation and the median's relative standard error.

    On a shared machine single runs have heavy upper tails (another process takes the core), so the
    median is the reported time and the stopping rule uses robust spreads: cv_robust = 1.4826 MAD /
    median, and rse = 1.2533 cv_robust / sqrt(n), the standard error of a median relative to it.
    `cv` is the plain std / mean of the runs. `min_ms` is the least disturbed run; `cpu_ms`, the
    median process CPU time per run, is what a single-threaded run costs when nothing else competes
    for the core (with more threads it also counts the thread pool's spinning).
    """
    t = np.asarray(times_ms, dtype=np.float64)
    mean, median = float(t.mean()), float(np.median(t))
    cv = float(t.std(ddof=1) / mean) if len(t) > 1 and mean > 0 else float("nan")
    cv_robust = float(1.4826 * np.median(np.abs(t - median)) / median) if median > 0 else float("nan")
    rse = 1.2533 * cv_robust / math.sqrt(len(t)) if len(t) > 1 else float("nan")
    return {"median_ms": median, "mean_ms": mean, "p90_ms": float(np.percentile(t, 90)), "cv": cv,
            "cv_robust": cv_robust, "rse": rse, "runs": len(t), "target_met": bool(rse <= target_rse),
            "min_ms": float(t.min()), **({"cpu_ms": float(np.median(cpu_ms))} if cpu_ms else {})}


def time_calls(call: Callable[[], Any], policy: TimingPolicy) -> dict[str, Any]:
    """Time `call` under the policy; milliseconds per call."""
    for _ in range(policy.warmup):
        call()
    times: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    while len(times) < policy.max_runs:
        c0, t0 = time.process_time(), time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        if len(times) >= policy.min_runs:
            s = summarize_times(times, policy.target_rse)
            if s["target_met"] or time.perf_counter() - start > policy.max_seconds:
                break
    return summarize_times(times, policy.target_rse, cpu)


def build_random(spec: Any, image_size: int, classes: int, seed: int = 0) -> Any:
    """The Keras logits model of a spec at a fixed input size, with seeded random weights."""
    import keras

    import keras_regnet

    keras.utils.set_random_seed(seed)
    return keras_regnet.build(spec, input_shape=(image_size, image_size, 3), classes=classes,
                              classifier_activation=None)


def calibration_images(image_size: int, count: int) -> np.ndarray:
    """`count` real images (scikit-learn's digits, RGB 0-255) at the input size, for int8 calibration."""
    from tflite.calibration import digits_rgb

    images, _ = digits_rgb(image_size, "train")
    return images[:count]


def export(model: Any, image_size: int, fmt: str, calib: np.ndarray) -> bytes:
    """In-memory TFLite flatbuffer: float32, or int8 (uint8 in/out) calibrated on `calib`."""
    from tflite.to_tflite import convert_model

    if fmt not in LATENCY_FORMATS:
        raise ConfigError(f"latency format must be one of {LATENCY_FORMATS}, got {fmt!r}")

    def representative() -> Any:
        for image in calib:
            yield [image[None].astype("float32")]

    return convert_model(model, image_size, fmt, "uint8", representative if fmt == "int8" else None)


def _interpreter(flatbuffer: bytes, threads: int) -> tuple[Any, str]:
    """A LiteRT interpreter with XNNPACK (LiteRT's default), or the reference kernels if it fails."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
        interpreter.allocate_tensors()
        return interpreter, "xnnpack"
    except RuntimeError as err:
        interpreter = Interpreter(model_content=flatbuffer, num_threads=threads,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        return interpreter, f"reference kernels (XNNPACK failed: {str(err).strip()})"


def litert_latency(flatbuffer: bytes, image: np.ndarray, threads: int, policy: TimingPolicy) -> dict[str, Any]:
    """Batch-1 latency of a flatbuffer on one real image (quantized to the input type if int)."""
    interpreter, delegate = _interpreter(flatbuffer, threads)
    inp = interpreter.get_input_details()[0]
    x = image[None]
    if not np.issubdtype(inp["dtype"], np.floating):
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max)
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    return {**time_calls(interpreter.invoke, policy), "delegate": delegate}


def tf_batch_latency(model: Any, image_size: int, batch_size: int, policy: TimingPolicy) -> dict[str, Any]:
    """The paper's protocol on this machine's CPU: TensorFlow inference time of one batch (ms)."""
    import tensorflow as tf

    x = tf.random.uniform((batch_size, image_size, image_size, 3), 0, 255, seed=0)
    fn = tf.function(lambda images: model(images, training=False))
    result = time_calls(lambda: fn(x).numpy(), policy)
    return {**result, "batch_size": batch_size, "median_ms_per_image": result["median_ms"] / batch_size}


def measure(spec: Any, image_size: int, classes: int, threads: tuple[int, ...], formats: tuple[str, ...],
            calib: np.ndarray, policy: TimingPolicy, tf_batch_size: int = 64,
            tf_policy: TimingPolicy | None = None) -> dict[str, Any]:
    """Every latency of one network: {'litert': {'<fmt>@<threads>': ...}, 'tflite_bytes': ..., 'tf': ...}."""
    start = time.perf_counter()
    model = build_random(spec, image_size, classes)
    out: dict[str, Any] = {"litert": {}, "tflite_bytes": {}}
    for fmt in formats:
        flatbuffer = export(model, image_size, fmt, calib)
        out["tflite_bytes"][fmt] = len(flatbuffer)
        for t in threads:
            out["litert"][f"{fmt}@{t}"] = litert_latency(flatbuffer, calib[0], t, policy)
    if tf_batch_size:
        out["tf"] = tf_batch_latency(model, image_size, tf_batch_size, tf_policy or policy)
    out["measure_s"] = time.perf_counter() - start
    return out
