r"""Measure a design-space population's inference time on this CPU: python -m design_lab.latency.

Samples a population (or reuses a training sweep's, so the two join by sample index), builds each
network with random weights at --image_size, exports float32 and int8 TFLite in memory (int8
calibrated on a few real images), times LiteRT batch-1 inference with XNNPACK at each of
--threads, and TensorFlow batch-64 inference (the paper's protocol, here on CPU). The default flops
budget is the paper's 200MF-1.6GF at 224 rescaled to --image_size; a population whose largest
network's TF batch would not fit in the available memory is refused before anything is built. Each measured
network appends one JSON line to SWEEP_DIR/latency.jsonl; reruns skip measured networks and
--shard=i/n splits the work, as in design_lab.sweep. The paper's 200MF-1.6GF range at 224:

  python -m design_lab.latency --space=regnetx --num_models=30 \
      --sweep_dir=sweeps/latency_regnetx
  python -m design_lab.analyze sweeps/latency_regnetx     # latency panels, fitted latency models
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

from absl import app, flags

from keras_regnet import cli_help, dataclass_flags, resolve_spec
from keras_regnet.complexity import complexity
from keras_regnet.dataclass_flags import flag_field as F
from keras_regnet.design_space.latency_model import LatencyModel
from keras_regnet.design_space.sampler import Sample
from keras_regnet.design_space.spaces import SPACES
from keras_regnet.errors import ConfigError, cli_boundary
from keras_regnet.fileio import write_text_atomic
from keras_regnet.zoo import list_models
from design_lab.latency_bench import LATENCY_FORMATS, TimingPolicy
from design_lab.latency_memory import check_tf_batch_fits
from design_lab.latency_report import LATENCY, ZOO_SPACE
from design_lab.budget_flags import flops_budget, latency_budget, parse_range
from design_lab.sweep_results import ResultsFile
from design_lab.sweep_runner import CONFIG, SweepConfig, load_samples, parse_shard, prepare

LATENCY_CONFIG = "latency_config.json"
LATENCY_FLOPS = (200e6, 1.6e9)  # the paper's Fig. 12 range, at 224x224 with a stride-2 stem

FLAGS = flags.FLAGS


@dataclass(frozen=True)
class LatencyCliConfig:
    """The flags of `python -m design_lab.latency` (default and help declared once, here)."""

    space: str = F("regnetx", "Design space to sample (ignored when SWEEP_DIR already holds a sweep: its "
                   "population is measured).", choices=sorted(SPACES))
    num_models: int = F(30, "Networks to sample.", lower_bound=1)
    seed: int = F(0, "Sampling seed.")
    flops_range: str = F("auto", "low,high flops (K/M/G suffixes), taken as given, or 'none'; 'auto' = the "
                         "paper's 200MF-1.6GF range (Fig. 12, at 224 with a stride-2 stem) rescaled by the feature "
                         "area after the stem ((image_size/stem_stride)^2 / 112^2), as design_lab.sweep does.")
    params_range: str = F("none", "low,high parameter count or 'none'.")
    acts_range: str = F("none", "low,high activation count or 'none'.")
    latency_range: str = F("none", "low,high predicted milliseconds (with --latency_model) or 'none'.")
    latency_model: str = F("", "PATH#KEY of a fitted latency model (see design_lab.analyze).")
    image_size: int = F(224, "Input resolution of the built networks.", lower_bound=8)
    stem_stride: int = F(2, "Stem stride of sampled networks (1 or 2).", lower_bound=1, upper_bound=2)
    stem_width: int = F(32, "Stem width of sampled networks.", lower_bound=1)
    num_classes: int = F(1000, "Classes of the head.", lower_bound=1)
    sweep_dir: str = F("sweeps/latency", "Directory of the population (created if missing).")
    zoo: tuple[str, ...] = F((), "Measure these zoo models instead of a sampled population ('all' = the 24; "
                             "e.g. regnetx_200mf,regnety_600mf), to place them on the population plots.")
    shard: str = F("0/1", "i/n: measure the networks whose index is i mod n.")
    threads: tuple[str, ...] = F(("1", "2"), "LiteRT thread counts.")
    formats: tuple[str, ...] = F(tuple(LATENCY_FORMATS), f"TFLite formats, of {', '.join(LATENCY_FORMATS)}.")
    calibration_images: int = F(8, "Real images (scikit-learn digits) for int8 calibration.", lower_bound=1)
    tf_batch_size: int = F(64, "TensorFlow batch for the paper's protocol; 0 skips it.", lower_bound=0)
    target_rse: float = F(0.02, "Repeat until the median time's relative standard error is <= this.")
    warmup: int = F(5, "Untimed runs before timing.", lower_bound=0)
    min_runs: int = F(10, "Timed runs at least.", lower_bound=2)
    max_runs: int = F(300, "Timed runs at most.", lower_bound=2)
    max_seconds: float = F(20.0, "Stop timing one variant after this long even if the target is not met.")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """The CLI's flags; defined when it runs, so importing this module (tests, tools) defines none
    and cannot collide with another CLI's flags in the same process."""
    dataclass_flags.define_flags(LatencyCliConfig, flag_values)


def settings(opts: LatencyCliConfig) -> dict[str, Any]:
    """What the measurements depend on; a restart must agree on all of it."""
    threads = []
    for t in opts.threads:
        if not str(t).isdigit() or int(t) < 1:
            raise flags.ValidationError(f"--threads must be positive integers, got {list(opts.threads)}")
        threads.append(int(t))
    bad = [f for f in opts.formats if f not in LATENCY_FORMATS]
    if bad or not opts.formats:
        raise flags.ValidationError(f"--formats must be some of {LATENCY_FORMATS}, got {list(opts.formats)}")
    policy = TimingPolicy(opts.warmup, opts.min_runs, opts.max_runs, opts.max_seconds, opts.target_rse)
    return {"image_size": opts.image_size, "classes": opts.num_classes, "threads": threads,
            "formats": list(opts.formats), "calibration_images": opts.calibration_images,
            "tf_batch_size": opts.tf_batch_size, "timing": asdict(policy), "zoo": list(opts.zoo)}


def check_settings(sweep_dir: str, wanted: dict[str, Any]) -> None:
    """Write SWEEP_DIR/latency_config.json, or refuse a restart whose settings differ."""
    path = os.path.join(sweep_dir, LATENCY_CONFIG)
    wanted = json.loads(json.dumps(wanted))
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if diff:
            detail = ", ".join(f"{k}: stored {stored.get(k)!r} vs given {wanted.get(k)!r}" for k in diff)
            raise ConfigError(f"{sweep_dir} holds latencies measured differently ({detail}); use the stored "
                              f"settings or a new sweep_dir")
        return
    write_text_atomic(path, json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def zoo_population(names: list[str], image_size: int, classes: int) -> list[Sample]:
    """Zoo models as a population (space 'zoo', params {'model': name}), indexed in the given order."""
    names = list_models() if [n.lower() for n in names] == ["all"] else list(names)
    out = []
    for i, name in enumerate(names):
        spec = resolve_spec(name, label="--zoo")
        cx = complexity(spec, image_size, classes=classes)
        out.append(Sample(i, ZOO_SPACE, spec, {"model": spec.name}, cx))
    return out


def population(sweep_dir: str, opts: LatencyCliConfig) -> list[Any]:
    """Zoo models (--zoo), the sweep's own population if SWEEP_DIR holds one, else a new one."""
    if opts.zoo:
        return zoo_population(list(opts.zoo), opts.image_size, opts.num_classes)
    if os.path.exists(os.path.join(sweep_dir, CONFIG)):
        return load_samples(sweep_dir)
    latency_range, latency_model = latency_budget(opts.latency_range, opts.latency_model, opts.image_size)
    flops = flops_budget(opts.flops_range, opts.image_size, opts.stem_stride, LATENCY_FLOPS)
    config = SweepConfig(opts.space, opts.num_models, opts.seed, flops,
                         parse_range(opts.params_range, "params_range"), parse_range(opts.acts_range, "acts_range"),
                         opts.image_size, opts.stem_stride, opts.stem_width, opts.num_classes, {},
                         latency_range=latency_range, latency_model=latency_model)
    return prepare(sweep_dir, config)


def measurer(setting: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    """spec -> its measurements under these settings (TensorFlow and LiteRT are loaded here)."""
    from design_lab import latency_bench as bench

    calib = bench.calibration_images(setting["image_size"], setting["calibration_images"])
    policy = TimingPolicy(**setting["timing"])
    tf_policy = TimingPolicy(**{**setting["timing"], "warmup": 1, "min_runs": 3, "max_runs": 10})

    def measure(spec: Any) -> dict[str, Any]:
        return bench.measure(spec, setting["image_size"], setting["classes"], tuple(setting["threads"]),
                             tuple(setting["formats"]), calib, policy, setting["tf_batch_size"], tf_policy)

    return measure


def run(sweep_dir: str, population_: list[Any], setting: dict[str, Any], shard: tuple[int, int],
        report: Any = print, measure: Optional[Callable[[Any], dict[str, Any]]] = None,
        available_memory: Optional[int] = None) -> ResultsFile:
    """Measure this shard's unmeasured networks, one latency.jsonl line each; first refuse a shard whose
    largest network's TF batch would not fit in `available_memory` (default: what the OS reports)."""
    check_settings(sweep_dir, setting)
    results = ResultsFile(os.path.join(sweep_dir, LATENCY))
    i, n = shard
    mine = [s for s in population_ if s.index % n == i and s.index not in results.done()]
    check_tf_batch_fits(mine, setting["image_size"], setting["classes"], setting["tf_batch_size"], available_memory)
    if mine and measure is None:
        measure = measurer(setting)
    host = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count()}
    for s in mine:
        if s.index in results.done():  # re-read: another shard may have measured it meanwhile
            continue
        size, classes = setting["image_size"], setting["classes"]
        out = measure(s.spec)
        cx = complexity(s.spec, size, classes=classes)
        record = {"index": s.index, "space": s.space, "params": s.params, "spec": s.spec.to_dict(),
                  "complexity": {"flops": cx.flops, "params": cx.params, "acts": cx.acts},
                  "image_size": size, "shard": f"{i}/{n}", "host": host, **out}
        results.append(record)
        lat = ", ".join(f"{k} {v['median_ms']:.2f}ms" for k, v in out["litert"].items())
        report(f"model {s.index}: {cx.flops / 1e6:.0f}MF {lat} ({out.get('measure_s', 0):.0f}s); "
               f"{len(results.done())}/{len(population_)} measured")
    return results


def in_range_check(sweep_dir: str, records: list[dict[str, Any]]) -> Optional[str]:
    """For a latency-budgeted population: how many measured networks fall inside the budget."""
    if not os.path.exists(os.path.join(sweep_dir, CONFIG)):
        return None
    with open(os.path.join(sweep_dir, CONFIG), encoding="utf-8") as f:
        config = SweepConfig.from_dict(json.load(f))
    if config.latency_range is None or not config.latency_model:
        return None
    model = LatencyModel.from_dict(config.latency_model)
    lo, hi = config.latency_range
    measured = [r["litert"][model.key]["median_ms"] for r in records if model.key in r.get("litert", {})]
    if not measured:
        return f"latency budget {lo}-{hi} ms ({model.key}): no measurement of {model.key} yet"
    inside = sum(lo <= m <= hi for m in measured)
    return (f"latency budget {lo:g}-{hi:g} ms ({model.key}): {inside}/{len(measured)} measured networks "
            f"inside ({100 * inside / len(measured):.0f}%), measured range {min(measured):.2f}-{max(measured):.2f} ms")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    opts = dataclass_flags.from_flags(LatencyCliConfig)
    try:
        shard = parse_shard(opts.shard)
        setting = settings(opts)
        pop = population(opts.sweep_dir, opts)
        results = run(opts.sweep_dir, pop, setting, shard, report=lambda m: print(m, flush=True))
    except flags.ValidationError as e:
        raise app.UsageError(str(e)) from e
    records = results.load()
    print(f"latency: {results.path} ({len(records)}/{len(pop)} networks measured)", flush=True)
    check = in_range_check(opts.sweep_dir, records)
    if check:
        print(check, flush=True)


if __name__ == "__main__":
    define_flags()
    cli_help.run(cli_boundary(main))
