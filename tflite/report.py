"""What each exported variant costs and gains: size, agreement, accuracy, LiteRT latency.

Agreement is the fraction of images whose top-1 class equals the float Keras model's; accuracy is
top-1/top-5 against labels when the evaluation data has them. Latency is per image (batch 1)
through the LiteRT interpreter with its default XNNPACK delegate, at 1 and 2 threads.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from keras_regnet.errors import ConfigError, ExportError

LATENCY_THREADS = (1, 2)
LOG = logging.getLogger("tflite")


@dataclass
class VariantReport:
    """One row of the report."""

    name: str
    path: str
    size_bytes: int
    agreement: float | None = None
    top1: float | None = None
    top5: float | None = None
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    signatures: list[str] | None = None
    ops: list[str] | None = None
    io_type: str | None = None
    delegate: str | None = None
    gzip_bytes: int | None = None
    sparsity: float | None = None
    max_logit_diff: float | None = None
    runtime: str | None = None
    xnnpack_convs: str | None = None
    batch_latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    unfolded_batch_latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)


# Models XNNPACK refused to prepare (path -> its error); they run on LiteRT's reference kernels.
XNNPACK_FAILURES: dict[str, str] = {}


def _interpreter(path: str, threads: int) -> Any:
    """LiteRT interpreter with XNNPACK; if XNNPACK cannot prepare the model, the reference kernels.

    A phone running the model with XNNPACK would hit the same failure, so it is logged and recorded
    (see `delegate`) rather than hidden, and the report still gets its accuracy figures.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=path, num_threads=threads)
    try:
        interpreter.allocate_tensors()
        return interpreter
    except RuntimeError as err:
        if "XNNPACK" not in str(err) and "elegate" not in str(err):
            raise
        if path not in XNNPACK_FAILURES:
            LOG.warning("XNNPACK cannot run %s (%s); using LiteRT's reference kernels", path, str(err).strip())
        XNNPACK_FAILURES[path] = str(err).strip()
    interpreter = Interpreter(model_path=path, num_threads=threads,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def delegate(path: str) -> str:
    """Which kernels ran the model in this report: 'xnnpack' or the reference kernels and why."""
    failure = XNNPACK_FAILURES.get(path)
    return "xnnpack" if failure is None else f"reference kernels (XNNPACK failed: {failure})"


class DelegateFallbackError(ExportError):
    """Grouped CONV_2D ops of a TFLite model would run on LiteRT's reference kernel, not XNNPACK."""

    def __init__(self, path: str, ops: list[str]) -> None:
        self.ops = ops
        super().__init__(
            f"{path}: XNNPACK does not run {len(ops)} grouped CONV_2D op(s): {', '.join(ops)}; LiteRT's builtin "
            "grouped CONV_2D is a slow reference kernel (XNNPACK needs static shapes and supported types)"
        )


def conv_delegation(path: str) -> tuple[int, list[str]]:
    """(number of CONV_2D ops, descriptions of those XNNPACK does not run) of a TFLite model.

    After XNNPACK is applied, each DELEGATE node stands for the original nodes between its input and
    output tensors; a node is delegated iff walking back from a DELEGATE output reaches it before
    the DELEGATE inputs. If XNNPACK refused the whole model, no conv is delegated.
    """
    interpreter = _interpreter(path, 1)
    ops = interpreter._get_ops_details()
    producers = {int(t): op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    inside: set[int] = set()
    for node in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack, seen = [int(t) for t in node["outputs"]], set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor in boundary or tensor < 0:
                continue
            seen.add(tensor)
            index = producers.get(tensor)
            if index is not None and index not in inside:
                inside.add(index)
                stack.extend(int(t) for t in ops[index]["inputs"])
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    outside = []
    for op in convs:
        if op["index"] in inside:
            continue
        x, w = (interpreter._get_tensor_details(int(t), 0) for t in op["inputs"][:2])
        groups = int(x["shape"][-1]) // max(int(w["shape"][-1]), 1)
        outside.append(f"CONV_2D #{op['index']} ({x['name']} -> groups={groups})")
    return len(convs), outside


def check_delegation(row: VariantReport, path: str, label: str | None = None) -> None:
    """Record how many CONV_2D ops XNNPACK runs; raise DelegateFallbackError if a grouped one is left out."""
    total, outside = conv_delegation(path)
    row.xnnpack_convs = f"{total - len(outside)}/{total}"
    grouped = [name for name in outside if not name.endswith("groups=1)")]
    if grouped:
        raise DelegateFallbackError(label or path, grouped)


def _quantize(images: np.ndarray, detail: dict) -> np.ndarray:
    """Float images -> the interpreter's input dtype (quantized with its scale/zero point if int)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return images.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return values.astype("float32")
    scale, zero_point = detail["quantization"]
    return (values.astype("float32") - zero_point) * scale


def tflite_predict(path: str, images: np.ndarray, threads: int = 2) -> np.ndarray:
    """Probabilities (N, classes) of a TFLite model, one image per invoke (static batch 1)."""
    interpreter = _interpreter(path, threads)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        interpreter.set_tensor(inp["index"], _quantize(image[None], inp))
        interpreter.invoke()
        results.append(_dequantize(interpreter.get_tensor(out["index"]), out)[0])
    return np.stack(results)


def tflite_io_type(path: str) -> str:
    """dtype name of the model's input (float32, int8, uint8)."""
    return np.dtype(_interpreter(path, 1).get_input_details()[0]["dtype"]).name


def latency(path: str, image: np.ndarray, threads: int, runs: int = 30, warmup: int = 3,
            xnnpack: bool = True) -> dict[str, float]:
    """Mean and p90 milliseconds per invoke on one real image (xnnpack=False: builtin kernels only)."""
    if runs < 1:
        raise ConfigError(f"latency runs must be >= 1, got {runs}")
    if xnnpack:
        interpreter = _interpreter(path, threads)
    else:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        interpreter = Interpreter(model_path=path, num_threads=threads,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], _quantize(image[None], inp))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return {"mean_ms": float(np.mean(times)), "p90_ms": float(np.percentile(times, 90))}


def latency_interleaved(paths: list[str], image: np.ndarray, threads: int, runs: int = 30,
                        warmup: int = 3) -> list[dict[str, float]]:
    """Like `latency` for several models, alternating invokes so load spikes hit them all alike."""
    interpreters = []
    for path in paths:
        interpreter = _interpreter(path, threads)
        inp = interpreter.get_input_details()[0]
        interpreter.set_tensor(inp["index"], _quantize(image[None], inp))
        for _ in range(warmup):
            interpreter.invoke()
        interpreters.append(interpreter)
    times: list[list[float]] = [[] for _ in paths]
    for _ in range(runs):
        for i, interpreter in enumerate(interpreters):
            start = time.perf_counter()
            interpreter.invoke()
            times[i].append((time.perf_counter() - start) * 1e3)
    return [{"mean_ms": float(np.mean(t)), "p90_ms": float(np.percentile(t, 90)),
             "median_ms": float(np.median(t))} for t in times]


def agreement(probs: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows with the same arg-max class as the reference."""
    return float(np.mean(np.argmax(probs, -1) == np.argmax(reference, -1)))


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the k most probable classes."""
    k = min(k, probs.shape[-1])
    top = np.argsort(-probs, axis=-1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=-1)))


def score(row: VariantReport, probs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None,
          logits: np.ndarray | None = None, reference_logits: np.ndarray | None = None) -> None:
    """Fill agreement (and accuracy when labels are known, max |logit difference| when logits are)."""
    row.agreement = agreement(probs, reference)
    if logits is not None and reference_logits is not None:
        row.max_logit_diff = float(np.max(np.abs(logits.astype(np.float64) - reference_logits)))
    if labels is not None:
        row.top1 = topk_accuracy(probs, labels, 1)
        row.top5 = topk_accuracy(probs, labels, 5)


def to_markdown(rows: list[VariantReport]) -> str:
    """The markdown table printed at the end of an export."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def ms(row: VariantReport, threads: int) -> str:
        lat = row.latency_ms.get(str(threads))
        return "-" if not lat else f"{lat['mean_ms']:.2f} / {lat['p90_ms']:.2f}"

    lines = [
        "| variant | size (MB) | top-1 agreement | top-1 | top-5 | 1 thread ms (mean / p90) | "
        "2 threads ms (mean / p90) | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        notes = f"signatures: {', '.join(r.signatures)}" if r.signatures else (f"I/O {r.io_type}" if r.io_type else "")
        if r.gzip_bytes:
            notes += f"; gzip {r.gzip_bytes / 1e6:.2f} MB"
        if r.sparsity is not None:
            notes += f"; kernel sparsity {100 * r.sparsity:.0f}%"
        if r.delegate and r.delegate != "xnnpack":
            notes += "; XNNPACK refused it, reference kernels timed"
        if r.xnnpack_convs:
            notes += f"; CONV_2D in XNNPACK {r.xnnpack_convs}"
        if r.runtime:
            notes += f"; {r.runtime}"
        if r.max_logit_diff is not None:
            notes += f"; max logit diff {r.max_logit_diff:.1e}"
        for batch, lat in r.batch_latency_ms.items():
            before = r.unfolded_batch_latency_ms.get(batch)
            notes += f"; TF batch {batch}: {lat['median_ms']:.1f} ms"
            notes += f" (BN unfolded {before['median_ms']:.1f} ms)" if before else ""
        notes = notes.removeprefix("; ")
        lines.append(
            f"| {r.name} | {r.size_bytes / 1e6:.2f} | {pct(r.agreement)} | {pct(r.top1)} | {pct(r.top5)} | "
            f"{ms(r, 1)} | {ms(r, 2)} | {notes} |"
        )
    return "\n".join(lines)


def to_json(rows: list[VariantReport], meta: dict[str, Any]) -> str:
    """The report as JSON: run metadata plus one object per variant."""
    return json.dumps({**meta, "variants": [asdict(r) for r in rows]}, indent=2)
