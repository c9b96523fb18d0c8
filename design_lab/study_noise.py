"""The study's noise floor: retrain some of its models with other seeds and measure the error spread.

An EDF difference smaller than what retraining the same network changes is not a property of the
spaces. The retrained models are the study's first ones, taken round-robin over its spaces; each is
trained `repeats` more times with seeds no sweep model uses. Results go to study_dir/noise/results.jsonl
(one line per retraining, keyed by slot), so the noise floor resumes after a kill like the sweeps.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from design_lab.study_plan import NOISE_DIR, StudyPlan, finished
from design_lab.sweep_results import ResultsFile
from design_lab.sweep_runner import RESULTS, TrainFn
from keras_regnet.spec import NetSpec

SEED_STRIDE = 1_000_003  # retraining r of a model uses its sweep seed + (r + 1) * SEED_STRIDE


def noise_path(study_dir: str) -> str:
    return os.path.join(study_dir, NOISE_DIR, RESULTS)


def chosen(plan: StudyPlan, models: int) -> list[tuple[str, int]]:
    """(space, index) of the models to retrain: index 0 of every space, then index 1, ..."""
    s = len(plan.spaces)
    return [(plan.spaces[j % s], j // s) for j in range(min(models, s * plan.n))]


def run_noise(study_dir: str, plan: StudyPlan, train_fn: TrainFn, models: int, repeats: int,
              shard: tuple[int, int] = (0, 1), report: Callable[[str], None] = print) -> int:
    """Retrain this shard's share of the chosen models (those already trained once); return lines written."""
    results = ResultsFile(noise_path(study_dir), key="slot")
    originals = {space: {int(r["index"]): r for r in finished(study_dir, space)} for space in plan.spaces}
    i, n = shard
    written = 0
    for j, (space, index) in enumerate(chosen(plan, models)):
        first = originals[space].get(index)
        if first is None:
            continue
        for rep in range(repeats):
            slot = j * repeats + rep
            if slot % n != i or slot in results.done():
                continue
            seed = int(first["seed"]) + (rep + 1) * SEED_STRIDE
            start = time.perf_counter()
            out = train_fn(NetSpec.from_dict(first["spec"]), **dict(plan.train, seed=seed))
            record = {"slot": slot, "space": space, "index": index, "repeat": rep, "seed": seed,
                      "top1_err": float(out["top1_err"]), "original_seed": int(first["seed"]),
                      "original_top1_err": float(first["top1_err"]),
                      "train_time_s": float(out.get("train_time_s", time.perf_counter() - start))}
            if results.append(record):
                written += 1
            report(f"noise floor: {space} model {index} seed {seed} top1_err={record['top1_err']:.2f}% "
                   f"(first training {record['original_top1_err']:.2f}%)")
    return written


def slots_left(study_dir: str, plan: StudyPlan, models: int, repeats: int, shard: tuple[int, int] = (0, 1)) -> int:
    """Retrainings of this shard not done yet (some may wait for a model another shard has not finished)."""
    done = ResultsFile(noise_path(study_dir), key="slot").done()
    i, n = shard
    return sum(1 for k in range(len(chosen(plan, models)) * repeats) if k % n == i and k not in done)


@dataclass(frozen=True)
class NoiseFloor:
    """Per-model error spread under retraining and its pooled standard deviation (percentage points)."""

    per_model: list[dict[str, Any]]  # space, index, errors (first training first), sd, range
    pooled_sd: float  # sqrt of the mean per-model variance (ddof=1)
    runs: int  # trainings behind it (first trainings included)

    @property
    def available(self) -> bool:
        return bool(self.per_model)


def noise_floor(records: list[dict[str, Any]]) -> NoiseFloor:
    """Group retrainings by model (with the model's first training) and measure their spread."""
    groups: dict[tuple[str, int], list[float]] = {}
    for r in sorted(records, key=lambda r: int(r["slot"])):
        key = (str(r["space"]), int(r["index"]))
        groups.setdefault(key, [float(r["original_top1_err"])]).append(float(r["top1_err"]))
    per_model = []
    for (space, index), errs in groups.items():
        e = np.asarray(errs)
        per_model.append({"space": space, "index": index, "errors": errs,
                          "sd": float(e.std(ddof=1)), "range": float(e.max() - e.min())})
    variances = [m["sd"] ** 2 for m in per_model]
    pooled = float(np.sqrt(np.mean(variances))) if variances else float("nan")
    return NoiseFloor(per_model, pooled, sum(len(m["errors"]) for m in per_model))


def load_noise(study_dir: str) -> NoiseFloor:
    return noise_floor(ResultsFile(noise_path(study_dir), key="slot").load())
