"""Run a study: sample every space, estimate the time, train the spaces in rounds, then the noise floor.

Each space is a sweep directory trained by `sweep_runner.run`, so a killed study resumes without
losing or repeating a model and `shard=(i, n)` splits it over processes or machines. Spaces are
trained in rounds (models [0, r) of every space, then [r, 2r), ...), so a study stopped early still
compares populations of nearly equal size.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Optional

import numpy as np

from design_lab.study_noise import chosen, noise_path, run_noise, slots_left
from design_lab.study_plan import StudyPlan, describe, finished, rounds, sweep_dir
from design_lab.sweep_results import ResultsFile
from design_lab.sweep_runner import TrainFn, _hms, prepare, run
from keras_regnet.errors import ConfigError
from keras_regnet.fileio import write_text_atomic

STUDY_FILE = "study.json"


def save_plan(study_dir: str, plan: StudyPlan, noise_models: int, noise_repeats: int) -> None:
    """Write study_dir/study.json, or refuse a plan that differs from the stored one."""
    wanted = {"spaces": list(plan.spaces), "n": plan.n, "noise_models": noise_models,
              "noise_repeats": noise_repeats}
    path = os.path.join(study_dir, STUDY_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        if stored != wanted:
            raise ConfigError(f"{study_dir} already holds another study ({stored} vs given {wanted}); "
                              f"use the stored settings or a new study_dir")
        return
    os.makedirs(study_dir, exist_ok=True)
    write_text_atomic(path, json.dumps(wanted, indent=2) + "\n")


def load_plan(study_dir: str) -> dict:
    """study_dir/study.json (spaces, n, noise settings) of an existing study."""
    path = os.path.join(study_dir, STUDY_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{study_dir!r} holds no study ({path} does not exist)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def plan_lines(study_dir: str, plan: StudyPlan) -> list[str]:
    """Sample (or reload) every space and describe the planned models, one line per space."""
    lines = [describe(plan)]
    for space in plan.spaces:
        population = prepare(sweep_dir(study_dir, space), plan.sweep_config(space))
        flops = np.array([s.complexity.flops for s in population]) / 1e6
        depth = [sum(s.spec.depths) for s in population]
        done = len(finished(study_dir, space))
        lines.append(f"  {space}: {len(population)} models, {flops.min():.2f}-{flops.max():.2f} MF, depth "
                     f"{min(depth)}-{max(depth)}, {done} done; samples in "
                     f"{os.path.join(sweep_dir(study_dir, space), 'samples.jsonl')}")
    return lines


def seconds_per_model(study_dir: str, plan: StudyPlan) -> Optional[float]:
    """Median time per model of the models finished so far, build and export included (None before the first)."""
    times = [float(r.get("wall_time_s", r["train_time_s"])) for s in plan.spaces for r in finished(study_dir, s)]
    return float(np.median(times)) if times else None


def remaining(study_dir: str, plan: StudyPlan, shard: tuple[int, int], noise_models: int,
              noise_repeats: int) -> int:
    """Trainings this shard still has to do (sweep models + noise-floor retrainings)."""
    i, n = shard
    left = 0
    for space in plan.spaces:
        done = {int(r["index"]) for r in finished(study_dir, space)}
        left += sum(1 for k in range(plan.n) if k % n == i and k not in done)
    done_slots = ResultsFile(noise_path(study_dir), key="slot").done()
    slots = len(chosen(plan, noise_models)) * noise_repeats
    left += sum(1 for k in range(slots) if k % n == i and k not in done_slots)
    return left


def run_study(study_dir: str, plan: StudyPlan, train_fn: TrainFn, shard: tuple[int, int] = (0, 1),
              round_size: int = 5, noise_models: int = 10, noise_repeats: int = 1, noise_after: int = 5,
              report: Callable[[str], None] = print) -> None:
    """Print the plan and a time estimate, then train every space in rounds and the noise floor."""
    save_plan(study_dir, plan, noise_models, noise_repeats)
    for line in plan_lines(study_dir, plan):
        report(line)
    total = plan.n * len(plan.spaces)
    first = plan.spaces[0]

    def progress(space: str) -> Callable[[str], None]:
        def say(line: str) -> None:
            done = sum(len(finished(study_dir, s)) for s in plan.spaces)
            report(f"[study {done}/{total} models | {space}] {line}")
        return say

    pace = seconds_per_model(study_dir, plan)
    if pace is None:  # the estimate's probe is this shard's first model (index i of shard i/n; kept, not retrained)
        report("timing the first model for the estimate ...")
        start = time.perf_counter()
        run(sweep_dir(study_dir, first), plan.sweep_config(first), train_fn, shard, report=progress(first),
            stop_at=shard[0] + 1)
        pace = seconds_per_model(study_dir, plan) or (time.perf_counter() - start)
    left = remaining(study_dir, plan, shard, noise_models, noise_repeats)
    report(f"estimate: {left} trainings left for shard {shard[0]}/{shard[1]} x {pace:.1f} s/model = "
           f"{_hms(left * pace)} (from the models trained so far)")
    noise_done = False
    for bound in rounds(plan.n, round_size):
        for space in plan.spaces:
            run(sweep_dir(study_dir, space), plan.sweep_config(space), train_fn, shard, report=progress(space),
                stop_at=bound)
        if not noise_done and noise_models and noise_repeats and (bound >= noise_after or bound == plan.n):
            # A slot whose model another shard has not finished yet is skipped: tried again next round.
            run_noise(study_dir, plan, train_fn, noise_models, noise_repeats, shard, report=report)
            noise_done = not slots_left(study_dir, plan, noise_models, noise_repeats, shard)
    if not noise_done and noise_models and noise_repeats:
        report(f"noise floor: {slots_left(study_dir, plan, noise_models, noise_repeats, shard)} retrainings of "
               f"this shard wait for models other shards have not finished; run this command again after them")
