r"""Where one model of the default design-space study spends its seconds, and what not persisting saves.

    PYTHONPATH=. python benchmarks/study_model_seconds.py [--models=4] [--eager]

Trains the first --models models of `python -m design_lab.study`'s default plan (round-robin over its
spaces, model i of a space with the study's seed for i), each twice in turn: as the study does now
(`training.api.train` without a model_dir: no checkpoints, TensorBoard logs or model.keras) and as
before (with a model_dir: all of them written, then thrown away). Per run it prints the seconds of:
outside the loop (engine start and model build, plus the export when persisted), tracing (first
epoch's step time minus a later epoch's), the traced steps, eval (first eval traces too) and
checkpoints, and the process's CPU seconds (all threads; unlike wall time, unaffected by other jobs competing
for the cores, so comparable across a shared machine's loads). The last line gives the median wall and CPU
seconds per model of each contender and their CPU ratio. --eager adds a
third contender with tf.functions run eagerly (tf.config.run_functions_eagerly), to weigh tracing
against eager execution for these 66-step trainings.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("models", 4, "Models of the default study to train (round-robin over its spaces).", lower_bound=1)
flags.DEFINE_bool("eager", False, "Also train each model with tf.functions run eagerly.")


def phases(out: dict, wall: float) -> dict[str, float]:
    """Seconds by phase of one training result (training.api.train's dict) and its measured wall time."""
    steps = [h["seconds"]["steps"] for h in out["history"]]
    trace = max(steps[0] - statistics.median(steps[1:]), 0.0) if len(steps) > 1 else 0.0
    sec = out["seconds"]
    return {"wall": wall, "outside_loop": out["total_time_s"] - out["wall_s"], "trace": trace,
            "steps": sec["steps"] - trace, "eval": sec["eval"] + sec["precise_bn"], "checkpoint": sec["checkpoint"]}


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    from design_lab.study import StudyCliConfig, build_plan
    from design_lab.sweep_runner import prepare
    from training.api import train

    plan = build_plan(StudyCliConfig()).with_n(FLAGS.models)
    scratch = tempfile.mkdtemp(prefix="study-seconds-")
    picks = [(plan.spaces[k % len(plan.spaces)], k // len(plan.spaces)) for k in range(FLAGS.models)]
    contenders = ["thrown_away", "persisted"] + (["eager"] if FLAGS.eager else [])
    walls: dict[str, list[float]] = {c: [] for c in contenders}
    cpus: dict[str, list[float]] = {c: [] for c in contenders}
    train(prepare(os.path.join(scratch, "warm"), plan.sweep_config(plan.spaces[0]))[0].spec,
          **{**plan.sweep_config(plan.spaces[0]).train, "max_steps": 1})  # imports and data once, untimed
    for space, index in picks:
        cfg = plan.sweep_config(space)
        spec = prepare(os.path.join(scratch, space), cfg)[index].spec
        for who in contenders:
            kwargs = dict(cfg.train, seed=plan.seed * 100_003 + index)
            if who == "persisted":
                kwargs["model_dir"] = tempfile.mkdtemp(dir=scratch)
            tf.config.run_functions_eagerly(who == "eager")
            t0, c0 = time.perf_counter(), time.process_time()
            out = train(spec, **kwargs)
            row = {**phases(out, time.perf_counter() - t0), "cpu": time.process_time() - c0}
            walls[who].append(row["wall"])
            cpus[who].append(row["cpu"])
            print(f"{space}_{index:05d} {who:11s} " + " ".join(f"{k} {v:6.2f}s" for k, v in row.items())
                  + f"  top1_err {out['top1_err']:.1f}%", flush=True)
    tf.config.run_functions_eagerly(False)
    med = {c: statistics.median(w) for c, w in walls.items()}
    cpu = {c: statistics.median(w) for c, w in cpus.items()}
    each = ", ".join(f"{c} {med[c]:.1f}s wall / {cpu[c]:.1f}s CPU" for c in contenders)
    print(f"median per model: {each}; CPU persisted / thrown_away = {cpu['persisted'] / cpu['thrown_away']:.2f}x"
          + (f", eager / thrown_away = {cpu['eager'] / cpu['thrown_away']:.2f}x" if FLAGS.eager else ""))


if __name__ == "__main__":
    app.run(main)
