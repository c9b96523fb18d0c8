"""Run a design-space sweep: sample once, train each model briefly, append one line per model.

A sweep directory holds `config.json` (what is sampled and how models are trained), `samples.jsonl`
(the population, fixed at creation) and `results.jsonl` (append-only, one line per trained model).
Shard i of n trains the models whose index is i mod n and skips any already in the results file,
so sweeps restart, re-shard and run on many machines with no coordinator.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from design_lab.sweep_results import ResultsFile
from keras_regnet.design_space.latency_model import LatencyModel
from keras_regnet.design_space.sampler import SAMPLER_VERSION, Sample, sample
from keras_regnet.design_space.spaces import get_space
from keras_regnet.errors import ConfigError
from keras_regnet.fileio import write_text_atomic
from training.core.divergence import Diverged

CONFIG, SAMPLES, RESULTS = "config.json", "samples.jsonl", "results.jsonl"
DIVERGED_ERR = 100.0  # top-1/top-5 error (%) recorded for a model whose training diverged
TrainFn = Callable[..., dict]


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep; a restarted sweep must agree on all of it."""

    space: str
    num_models: int
    seed: int = 0
    flops_range: Optional[tuple[float, float]] = None
    params_range: Optional[tuple[float, float]] = None
    acts_range: Optional[tuple[float, float]] = None
    image_size: int = 32
    stem_stride: int = 1
    stem_width: int = 32
    classes: int = 10
    train: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the train function
    sampler_version: int = SAMPLER_VERSION  # a sweep sampled under older laws is not resumed
    latency_range: Optional[tuple[float, float]] = None  # ms, predicted by latency_model
    latency_model: Optional[dict[str, Any]] = None  # a design_space.latency_model.LatencyModel as a dict

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("flops_range", "params_range", "acts_range", "latency_range"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SweepConfig":
        d = dict(d)
        for k in ("flops_range", "params_range", "acts_range", "latency_range"):
            d[k] = tuple(d[k]) if d.get(k) is not None else None
        return cls(**d)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError as err:
        raise ConfigError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from err
    if not 0 <= i < n:
        raise ConfigError(f"shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def prepare(sweep_dir: str, config: SweepConfig) -> list[Sample]:
    """Create the sweep (config + samples) or check that an existing one has the same config."""
    get_space(config.space)
    cfg_path = os.path.join(sweep_dir, CONFIG)
    wanted = json.loads(json.dumps(config.to_dict()))
    if os.path.exists(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            stored = json.load(f)
        diff = {k: (stored.get(k), wanted.get(k)) for k in set(stored) | set(wanted)
                if stored.get(k) != wanted.get(k)}
        if diff:
            detail = ", ".join(f"{k}: stored {a!r} vs given {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ConfigError(f"{sweep_dir} already holds a different sweep ({detail}); "
                              f"use the stored settings or a new sweep_dir")
    samples_path = os.path.join(sweep_dir, SAMPLES)
    if not os.path.exists(samples_path):
        model = LatencyModel.from_dict(config.latency_model) if config.latency_model else None
        population = sample(config.space, config.num_models, config.seed, flops=config.flops_range,
                            params=config.params_range, acts=config.acts_range,
                            input_size=config.image_size, stem_width=config.stem_width,
                            stem_stride=config.stem_stride, classes=config.classes,
                            latency=config.latency_range, latency_model=model)
        check_input_size(population, config.image_size)
        # Identical inputs give identical files, so concurrent shards racing here are harmless.
        write_text_atomic(samples_path, "".join(json.dumps(s.to_dict(), sort_keys=True) + "\n"
                                                for s in population))
    if not os.path.exists(cfg_path):
        write_text_atomic(cfg_path, json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    return load_samples(sweep_dir)


def check_input_size(population: list[Sample], image_size: int) -> None:
    """Refuse, before anything is written, a resolution that some sampled network cannot take.

    The Keras builder needs height and width >= the network's total stride (stem stride x 2 per
    stage); without this check every model of the sweep would fail in the trainer, and the sweep
    directory would already hold a config that a corrected restart is refused against.
    """
    if not population:
        return
    stride = max(s.spec.total_stride for s in population)
    if image_size < stride:
        raise ConfigError(
            f"image_size {image_size} is smaller than the sampled networks' total stride {stride} "
            f"(stem stride x 2 per stage); use image_size >= {stride} or a smaller stem stride"
        )


def load_samples(sweep_dir: str) -> list[Sample]:
    """The population of a sweep, in index order."""
    with open(os.path.join(sweep_dir, SAMPLES), encoding="utf-8") as f:
        return [Sample.from_dict(json.loads(line)) for line in f if line.strip()]


def load_train_fn(path: str) -> TrainFn:
    """'package.module:function' -> the function (imported at run time)."""
    module, _, name = str(path).partition(":")
    if not module or not name:
        raise ConfigError(f"train_fn must look like package.module:function, got {path!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load train_fn {path!r}: {e}") from e


@dataclass
class Progress:
    """Models done / total for the sweep and this shard, with an ETA from this session's pace."""

    total: int
    shard_total: int
    done: int = 0
    shard_done: int = 0
    trained: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        eta = ""
        if self.trained:
            left = (self.shard_total - self.shard_done) * self.seconds / self.trained
            eta = f", ETA {_hms(left)} at {self.seconds / self.trained:.1f}s/model"
        return (f"sweep {self.done}/{self.total} models done; this shard "
                f"{self.shard_done}/{self.shard_total}{eta}")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def run(sweep_dir: str, config: SweepConfig, train_fn: TrainFn, shard: tuple[int, int] = (0, 1),
        report: Callable[[str], None] = print,
        on_result: Optional[Callable[[dict], None]] = None, model_dirs: bool = False,
        stop_at: Optional[int] = None) -> Progress:
    """Train this shard's unfinished models, appending one results line per model.

    stop_at: train only models with index < stop_at (a study trains its spaces in rounds, so a kill
    leaves every space with about the same number of models); None trains the whole population.
    """
    population = prepare(sweep_dir, config)
    results = ResultsFile(os.path.join(sweep_dir, RESULTS))
    i, n = shard
    mine = [s for s in population if s.index % n == i and (stop_at is None or s.index < stop_at)]
    done = results.done()
    prog = Progress(len(population), len(mine), len(done), sum(s.index in done for s in mine))
    report(prog.line())
    for s in mine:
        if s.index in results.done():  # re-read: another shard may have finished it meanwhile
            continue
        seed = config.seed * 100_003 + s.index
        kwargs = dict(config.train, seed=seed)
        if model_dirs:
            kwargs["model_dir"] = os.path.join(sweep_dir, "runs", f"model_{s.index:05d}")
        start = time.perf_counter()
        try:
            out = train_fn(s.spec, **kwargs)
        except Diverged as err:  # deterministic per (model, seed): retrying would only repeat it
            out = {"top1_err": DIVERGED_ERR, "top5_err": DIVERGED_ERR, "diverged": True,
                   "error": f"{type(err).__name__}: {err}"}
        elapsed = time.perf_counter() - start
        record = {**s.to_dict(), "top1_err": float(out["top1_err"]), "top5_err": float(out["top5_err"]),
                  "train_time_s": float(out.get("train_time_s", elapsed)),
                  "wall_time_s": elapsed,
                  "epochs": out.get("epochs", config.train.get("epochs")), "seed": seed,
                  "shard": f"{i}/{n}", "train_result": _jsonable(out)}
        if out.get("diverged"):
            record["diverged"] = True
        if results.append(record):
            prog.shard_done += 1
            prog.done = len(results.done())
            if on_result is not None:
                on_result(record)
        prog.trained += 1
        prog.seconds += elapsed
        status = " diverged, recorded as" if record.get("diverged") else ""
        report(f"model {s.index}{status} top1_err={record['top1_err']:.2f}% ({elapsed:.1f}s); " + prog.line())
    prog.done = len(results.done())
    return prog


def _jsonable(out: dict) -> dict:
    """The trainer's result dict restricted to JSON-serializable values."""
    clean = {}
    for k, v in out.items():
        try:
            json.dumps(v)
            clean[k] = v
        except TypeError:
            clean[k] = str(v)
    return clean
