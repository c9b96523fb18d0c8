"""The zoo speed/accuracy table: docs/results/benchmarks.csv and docs/results/zoo_speed.md for the RegNet zoo at 224.

    PYTHONPATH=. python benchmarks/zoo_speed.py                                # all 24 models
    PYTHONPATH=. python benchmarks/zoo_speed.py --models=regnetx_200mf,regnety_600mf --runs=10
    PYTHONPATH=. python benchmarks/zoo_speed.py --resume                       # go on after a stop

Every model's stages are measured in fresh processes (one process over the whole zoo grows past 22 GB) and the
table is rewritten after every model, so a stopped run keeps what it measured; --resume skips the
models already in the CSV. Timed calls shrink with the model's flops (--runs for models up to 800 MF,
never fewer than 3), so the 32GF models cost minutes, not an hour each.

Per model (random weights, 2 threads everywhere, one process, one model at a time):
  flops, params, acts           analytic (keras_regnet.complexity), multiply-adds
  top1                          published ImageNet top-1 of the reference weights (pycls)
  tf_b1_ms, tf_b32_img_s        the exported SavedModel's graph (BN folded), batch 1 latency and
                                batch 32 throughput
  litert_*_ms                   float32 and int8 TFLite, batch 1, with XNNPACK and without it (LiteRT's
                                builtin kernels: what a model that falls off XNNPACK costs)
  onnxruntime_b1_ms             ONNX export, ONNX Runtime CPU, batch 1, threads not spinning (when the
                                onnx extra is installed)
  train_step_s                  one SGD step, batch --train_batch at 224, float32
  timm_b1_ms, timm_train_step_s timm's RegNet of the same name on PyTorch (when torch and timm are installed),
                                in its own process, with OpenMP's default thread wait unless OMP_WAIT_POLICY
                                is set (see benchmarks/peers.py; the CSV's comment line names it)
  runs, load, seconds           timed calls per batch-1 figure, 1-minute load average after the row (the
                                benchmark's own threads make 1-2 of it), and the row's wall time
  failed                        stages that could not be measured (their columns stay empty)
Latencies are medians of --runs calls; a shared machine makes single figures move by 10-30%, so
compare rows measured in one run. The machine (CPU model, cores, TF version, load average) goes into
the CSV's comment line and the markdown. Time for the whole table on 2 cores: see docs/results/speed.md.
"""

from __future__ import annotations

import csv
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
STAGES = ("tf", "litert", "onnx", "train", "timm")  # each measured in its own process (see measure_in_child)
flags.DEFINE_list("models", None, "Zoo models (default: all 24).")
flags.DEFINE_integer("image_size", 224, "Input size.")
flags.DEFINE_integer("runs", 20, "Timed calls per batch-1 figure (batch 32 and train steps: a quarter, >= 2).")
flags.DEFINE_integer("train_batch", 16, "Batch size of the train step.")
flags.DEFINE_bool("timm", True, "Measure timm on PyTorch side by side when installed.")
flags.DEFINE_string("csv", os.path.join(REPO, "docs", "results", "benchmarks.csv"), "Output CSV.")
flags.DEFINE_string("row_json", None, "Internal: measure the one model of --models in this process and write "
                    "its row here (the parent runs every model in a fresh process so memory cannot pile up).")
flags.DEFINE_enum("stage", "tf", list(STAGES), "Internal, with --row_json: "
                  "which columns the child measures.")
flags.DEFINE_list("stages", list(STAGES), "Stages measured per model. A subset "
                  "re-measures those columns of the rows already in --csv in place (the other columns, seconds "
                  "and load stay; the CSV's comment says what was re-measured), e.g. --stages=timm.")
flags.DEFINE_bool("resume", False, "Keep the rows already in --csv and measure only the missing models.")
flags.register_validator("stages", lambda value: bool(value) and set(value) <= set(STAGES),
                         f"--stages takes a non-empty comma-separated subset of {', '.join(STAGES)}")
flags.register_multi_flags_validator(
    ["stages", "resume"], lambda f: not (f["resume"] and set(f["stages"]) != set(STAGES)),
    "--resume skips models already in --csv; with a --stages subset the rows are re-measured in place, so drop "
    "--resume")
flags.DEFINE_string("markdown", os.path.join(REPO, "docs", "results", "zoo_speed.md"), "Output markdown table.")
flags.DEFINE_string("readme", os.path.join(REPO, "README.md"), "README whose compact table (between the "
                    "zoo-speed markers) is rewritten; '' to leave it alone.")

COLUMNS = ("model", "flops_m", "params_m", "acts_m", "top1", "tf_b1_ms", "tf_b32_img_s", "litert_f32_ms",
           "litert_f32_noxnnpack_ms", "litert_int8_ms", "litert_int8_noxnnpack_ms", "onnxruntime_b1_ms",
           "train_step_s", "timm_b1_ms", "timm_train_step_s", "runs", "load", "seconds", "failed")
FULL_RUNS_UP_TO_MFLOPS = 800.0


def runs_for(flops_m: float, runs: int) -> int:
    """Timed calls for a model of flops_m: all --runs up to 800 MF, fewer for larger models, at least 3."""
    return max(3, min(runs, round(runs * FULL_RUNS_UP_TO_MFLOPS / max(flops_m, 1.0))))


def median_ms(fn: Callable[[], Any], runs: int, warmup: int = 2) -> float:
    """Median milliseconds of fn() after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def machine() -> str:
    """CPU model, cores, TensorFlow version and load, for the table's caption."""
    import tensorflow as tf

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = load_average()
    return (f"{cpu}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, Python {platform.python_version()}, "
            f"load average {load:.1f}")


def tf_figures(model: Any, size: int, runs: int) -> dict[str, float]:
    """SavedModel graph (BN folded) batch-1 latency and batch-32 throughput."""
    import tensorflow as tf

    from tflite.saved_model import ServingModule

    serve = ServingModule(model, size).serve
    x1 = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32))
    x32 = tf.constant(np.random.default_rng(1).uniform(0, 255, (32, size, size, 3)).astype(np.float32))
    b1 = median_ms(lambda: serve(images=x1)["logits"].numpy(), runs)
    b32 = median_ms(lambda: serve(images=x32)["logits"].numpy(), max(2, runs // 4), warmup=1)
    return {"tf_b1_ms": b1, "tf_b32_img_s": 32e3 / b32}


def litert_figures(model: Any, size: int, runs: int, workdir: str, calib: np.ndarray) -> dict[str, float]:
    """float32 and int8 TFLite batch-1 latency with and without XNNPACK (2 threads)."""
    from tflite import report
    from tflite import to_tflite

    out: dict[str, float] = {}
    for fmt in ("float32", "int8"):
        def data() -> Any:
            for image in calib:
                yield [image[None]]

        path = os.path.join(workdir, f"{fmt}.tflite")
        with open(path, "wb") as f:
            f.write(to_tflite.convert_model(model, size, fmt, representative=data if fmt == "int8" else None))
        tag = "f32" if fmt == "float32" else "int8"
        out[f"litert_{tag}_ms"] = report.latency(path, calib[0], 2, runs)["mean_ms"]
        out[f"litert_{tag}_noxnnpack_ms"] = report.latency(path, calib[0], 2, max(2, runs // 4),
                                                           xnnpack=False)["mean_ms"]
    return out


def onnx_figures(model: Any, size: int, runs: int, workdir: str, image: np.ndarray) -> dict[str, float]:
    """ONNX Runtime batch-1 latency (2 threads) of the BN-folded ONNX export; empty without the extra."""
    from tflite import onnx_export
    from tflite.fold_bn import fold_batch_norm

    try:
        onnx_export.require()
    except ValueError:
        return {}
    path = os.path.join(workdir, "model.onnx")
    with open(path, "wb") as f:
        f.write(onnx_export.convert(fold_batch_norm(model), size))
    return {"onnxruntime_b1_ms": onnx_export.latency(path, image, 2, runs, spinning=False)["mean_ms"]}


def train_step_s(model: Any, size: int, batch: int, steps: int) -> float:
    """Seconds per SGD train step (float32) of a fresh copy of the model."""
    import keras
    from train_step import keras3_step_fns

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 1000, batch)
    train, _ = keras3_step_fns(keras.models.clone_model(model), x, y)
    return median_ms(train, steps, warmup=1) / 1e3


def timm_figures(name: str, size: int, batch: int, runs: int) -> dict[str, float]:
    """timm's batch-1 latency and train-step seconds, or nothing when torch/timm are missing."""
    from peers import timm_model

    found = timm_model(name)
    if isinstance(found, str):
        return {}
    torch, net = found
    x1 = torch.rand(1, 3, size, size) * 255
    with torch.inference_mode():
        b1 = median_ms(lambda: net(x1), runs)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xb, yb = torch.rand(batch, 3, size, size) * 255, torch.randint(0, 1000, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        optimizer.step()

    return {"timm_b1_ms": b1, "timm_train_step_s": median_ms(step, max(2, runs // 4), warmup=1) / 1e3}


def zoo_model(name: str) -> tuple[Any, Any]:
    """(NetSpec, zoo entry) of a --models name (keras_regnet's resolver); the table holds zoo models only."""
    from keras_regnet import resolve_model

    spec, entry = resolve_model(name, label="--models")
    if entry is None:
        raise app.UsageError(f"--models={name!r} is not a zoo model; the table compares the zoo's 24 "
                             f"(keras_regnet.list_models())")
    return spec, entry


def measure(name: str, size: int, runs: int, calib: np.ndarray, stage: str) -> dict[str, Any]:
    """One stage's columns of a row (plus the analytic ones)."""
    from keras_regnet import build, complexity

    spec, entry = zoo_model(name)
    cx = complexity(spec)
    row: dict[str, Any] = {"model": entry.display_name, "flops_m": cx.flops / 1e6, "params_m": cx.params / 1e6,
                           "acts_m": cx.acts / 1e6, "top1": 100 - entry.top1_err}
    runs = runs_for(row["flops_m"], runs)
    row["runs"] = runs
    if stage == "timm":
        model = None  # timm's process holds no TensorFlow model, so nothing else's threads or memory are around
    else:
        model = build(spec, input_shape=(None, None, 3), classes=1000, classifier_activation=None)
    with tempfile.TemporaryDirectory() as workdir:
        if stage == "tf":
            row.update(tf_figures(model, size, runs))
        elif stage == "litert":
            row.update(litert_figures(model, size, runs, workdir, calib))
        elif stage == "onnx":
            row.update(onnx_figures(model, size, runs, workdir, calib[0]))
        elif stage == "train":
            row["train_step_s"] = train_step_s(model, size, FLAGS.train_batch, max(2, runs // 4))
        elif stage == "timm" and FLAGS.timm:
            row.update(timm_figures(name, size, FLAGS.train_batch, runs))
    return row


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 1 else (f"{value:.1f}" if value < 1000 else f"{value:.0f}")
    return "" if value is None else str(value)


def read_earlier(path: str) -> tuple[str, list[dict[str, Any]]]:
    """An earlier (possibly stopped) run's machine ("AMD EPYC, 2 cores, ...") and rows, values as written
    and empty ones dropped; ("", []) when there is no CSV yet."""
    from zoo_summary import read_table

    if not os.path.exists(path):
        return "", []
    comment, rows = read_table(path)
    return comment.split(";")[0].strip(), [{k: v for k, v in row.items() if v not in (None, "")} for row in rows]


def load_average() -> float:
    """The 1-minute load average (nan where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def display_names(names: list[str]) -> list[str]:
    """The zoo's display names ("RegNetY-600MF") for builder names, as the rows carry them."""
    from keras_regnet.zoo import get_entry

    return [get_entry(name).display_name for name in names]


def write(rows: list[dict[str, Any]], info: str, seconds: float) -> str:
    """Sort `rows` into zoo order (re-measured rows arrive last), write the CSV and markdown; return the markdown."""
    from keras_regnet.zoo import list_models

    order = {name: i for i, name in enumerate(display_names(list_models()))}
    rows.sort(key=lambda row: order.get(row["model"], len(order)))
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.csv)), exist_ok=True)
    with open(FLAGS.csv, "w", newline="", encoding="utf-8") as f:
        f.write(f"# {info}; {FLAGS.image_size}x{FLAGS.image_size}; {seconds / 60:.0f} min for {len(rows)} models\n")
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
    lines = [f"| {' | '.join(COLUMNS)} |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    lines += [f"| {' | '.join(_fmt(row.get(k)) or '-' for k in COLUMNS)} |" for row in rows]
    table = "\n".join(lines)
    with open(FLAGS.markdown, "w", encoding="utf-8") as f:
        f.write(f"# RegNet zoo speed at {FLAGS.image_size}x{FLAGS.image_size}\n\nMachine: {info}. "
                f"{len(rows)} models in {seconds / 60:.0f} min (`benchmarks/zoo_speed.py`; columns in its "
                f"docstring; ms per image unless named otherwise, batch 1 unless named otherwise).\n\n{table}\n")
    return table


README_START, README_END = "<!-- zoo-speed:start -->", "<!-- zoo-speed:end -->"


def readme_table(rows: list[dict[str, Any]]) -> str:
    """The README's compact table: the columns people choose a model by."""
    def num(row: dict[str, Any], key: str) -> float | None:
        value = row.get(key)
        return None if value in (None, "") else float(value)

    def ms(value: float | None, unit: str = " ms") -> str:
        return "-" if value is None else f"{_fmt(value)}{unit}"

    header = ("| model | flops | params | top-1 | TF SavedModel b1 | TF b32 | LiteRT f32 / int8 (XNNPACK) "
              "| ONNX Runtime | timm b1 | train step (timm) |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        train = ms(num(r, "train_step_s"), " s")
        if num(r, "timm_train_step_s") is not None:
            train += f" ({ms(num(r, 'timm_train_step_s'), ' s')})"
        lines.append(f"| {r['model']} | {_fmt(num(r, 'flops_m') / 1e3)} G | {_fmt(num(r, 'params_m'))} M "
                     f"| {_fmt(num(r, 'top1'))} | {ms(num(r, 'tf_b1_ms'))} | {ms(num(r, 'tf_b32_img_s'), ' img/s')} "
                     f"| {ms(num(r, 'litert_f32_ms'), '')} / {ms(num(r, 'litert_int8_ms'))} "
                     f"| {ms(num(r, 'onnxruntime_b1_ms'))} | {ms(num(r, 'timm_b1_ms'))} | {train} |")
    return "\n".join(lines)


def write_readme(path: str, rows: list[dict[str, Any]]) -> bool:
    """Replace the table between the zoo-speed markers of `path`; False when the markers are missing."""
    if not path or not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    text = text[:start + len(README_START)] + "\n" + readme_table(rows) + "\n" + text[end:]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return True


def measure_in_child(name: str, stages: list[str]) -> dict[str, Any]:
    """One row, each stage measured by this script in a fresh process.

    TensorFlow, LiteRT and tf2onnx keep the graphs and converters of every model they saw: one process
    over the whole zoo grew past 22 GB (killed at RegNetX-12GF), and one process per model past 21 GB
    at RegNetX-32GF (there the ONNX conversion alone did, before `tflite.tf2onnx_memory`). A stage
    that still fails (e.g. out of memory) leaves its columns empty and is named in the row's `failed`
    column.
    """
    import json
    import subprocess

    row: dict[str, Any] = {}
    failed = []
    for stage in stages:
        if stage == "timm" and not FLAGS.timm:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "row.json")
            cmd = [sys.executable, os.path.abspath(__file__), f"--models={name}", f"--row_json={out}",
                   f"--stage={stage}", f"--image_size={FLAGS.image_size}", f"--runs={FLAGS.runs}",
                   f"--train_batch={FLAGS.train_batch}", f"--timm={str(FLAGS.timm).lower()}"]
            result = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if result.returncode != 0 or not os.path.exists(out):
                reason = "killed: out of memory?" if result.returncode == -9 else f"exit {result.returncode}"
                print(f"{name}: stage {stage} failed ({reason}):\n{result.stderr[-1500:]}", flush=True)
                failed.append(f"{stage} ({reason})")
                continue
            with open(out, encoding="utf-8") as f:
                row.update(json.load(f))
    if not row:
        raise RuntimeError(f"every stage of {name} failed: {failed}")
    if failed:
        row["failed"] = "; ".join(failed)
    return row


def measure_one_and_write(path: str) -> None:
    """Child mode: measure the single --models entry and write its row as JSON."""
    import json

    from tflite.calibration import load_images

    (name,) = FLAGS.models
    calib = load_images("digits:train", FLAGS.image_size, 8).images.astype(np.float32)
    row = measure(name, FLAGS.image_size, FLAGS.runs, calib, FLAGS.stage)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(row, f)


def main(argv: list[str]) -> None:
    del argv
    from peers import omp_wait_policy

    from keras_regnet.zoo import get_entry, list_models

    if FLAGS.row_json:
        measure_one_and_write(FLAGS.row_json)
        return
    names = [zoo_model(n)[1].name for n in (FLAGS.models or list_models())]
    stages = [stage for stage in STAGES if stage in FLAGS.stages]
    partial = len(stages) < len(STAGES)
    peer = f", timm with {omp_wait_policy()}" if FLAGS.timm and "timm" in stages else ""
    earlier_machine, rows = read_earlier(FLAGS.csv) if FLAGS.resume or partial else ("", [])
    info = machine() + peer
    if partial:
        info = (f"{earlier_machine or machine()}; stages {','.join(stages)} re-measured separately "
                f"(load average {load_average():.1f}{peer})")
    by_model = {row["model"]: row for row in rows}
    seconds = sum(float(row.get("seconds", 0)) for row in rows)
    for name in names:
        display = get_entry(name).display_name
        if display in by_model and not partial:
            continue
        t0 = time.perf_counter()
        measured = measure_in_child(name, stages)
        if display in by_model:  # --stages subset: replace those columns, keep the row's other figures
            row = by_model[display]
            row.update(measured)
        else:
            row = by_model[display] = measured
            row["seconds"] = time.perf_counter() - t0
            row["load"] = load_average()
            seconds += row["seconds"]
        table = write(list(by_model.values()), info, seconds)
        print(f"{name}: {time.perf_counter() - t0:.0f} s  " + ", ".join(
            f"{k}={_fmt(v)}" for k, v in row.items() if k != "model"), flush=True)
    rows = list(by_model.values())
    table = write(rows, info, seconds)
    print(f"\n{info}\n{table}\nwrote {FLAGS.csv} and {FLAGS.markdown}")
    if write_readme(FLAGS.readme, rows):
        print(f"rewrote the table in {FLAGS.readme}")
    ratios = [f"{r['model']} tf/timm b1 {float(r['tf_b1_ms']) / float(r['timm_b1_ms']):.2f}x, "
              f"train {float(r['train_step_s']) / float(r['timm_train_step_s']):.2f}x"
              for r in rows if "timm_b1_ms" in r]
    if ratios:
        print("ratios keras_regnet/timm (< 1: keras_regnet faster): " + "; ".join(ratios))


if __name__ == "__main__":
    app.run(main)
