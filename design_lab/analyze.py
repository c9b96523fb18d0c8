r"""Compare finished sweeps: python -m design_lab.analyze SWEEP_DIR [SWEEP_DIR ...].

Writes to --out_dir (default: FIRST_SWEEP_DIR/analysis): the error EDFs of all sweeps (plain and
complexity-normalized) with min/mean error in the legend, per-sweep parameter-vs-error plots with
the bootstrap best range, the per-block widths of the best and worst models, e_fit vs error (all
as PNG and SVG), and report.md; then prints where everything went. Directories holding a
latency.jsonl (python -m design_lab.latency) also get latency panels (latency vs flops, acts and
params per format and thread count, with the zoo's measured models), latency.md and
latency_models.json; a directory may hold latencies only.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from keras_regnet import cli_help
from keras_regnet.errors import cli_boundary
from design_lab.latency_report import analyze_latency, has_latency
from design_lab.sweep_report import Sweep, _unique_names, analyze
from design_lab.sweep_runner import CONFIG, RESULTS

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "", "Output directory; default FIRST_SWEEP_DIR/analysis.")
flags.DEFINE_integer("bootstrap_repeats", 10_000, "Bootstrap resamples (the paper: 10^4).", lower_bound=1)
flags.DEFINE_integer("top", 3, "Best / worst models to list and draw per sweep.", lower_bound=1)
flags.DEFINE_bool("normalized", True, "Also plot the complexity-normalized EDF.")
flags.DEFINE_enum("latency_stat", "median_ms", ["median_ms", "min_ms", "cpu_ms"],
                  "Latency statistic of latency.jsonl to analyze: median wall time of the runs, the fastest "
                  "run, or the median process CPU time per run (robust to other load with 1 thread).")


def main(argv: list[str]) -> None:
    sweep_dirs = argv[1:]
    if not sweep_dirs:
        raise app.UsageError("give one or more sweep directories: python -m design_lab.analyze SWEEP_DIR ...")
    out_dir = FLAGS.out_dir or os.path.join(sweep_dirs[0], "analysis")
    trained = [d for d in sweep_dirs if os.path.exists(os.path.join(d, RESULTS))]
    timed = [d for d in sweep_dirs if has_latency(d)]
    if trained or not timed:
        result = analyze(sweep_dirs if not timed else trained, out_dir, FLAGS.bootstrap_repeats,
                         FLAGS.normalized, FLAGS.top)
        print(f"report: {result['report']}")
        for key, paths in result["figures"].items():
            print(f"{key}: {' '.join(paths)}")
    if timed:
        result = analyze_latency(timed, latency_names(timed), out_dir, FLAGS.latency_stat)
        print(f"latency report: {result['report']}")
        if result["models"]:
            print(f"latency models: {result['models']}")
        for key, paths in result["figures"].items():
            print(f"{key}: {' '.join(paths)}")


def latency_names(dirs: list[str]) -> list[str]:
    """Population labels: the sweep's space, told apart by path like the error analysis does."""
    sweeps = [Sweep(_space_of(d), d, [], {}) for d in dirs]
    _unique_names(sweeps)
    return [s.name for s in sweeps]


def _space_of(path: str) -> str:
    try:
        with open(os.path.join(path, CONFIG), encoding="utf-8") as f:
            return str(json.load(f)["space"])
    except (OSError, KeyError, ValueError):
        return os.path.basename(os.path.normpath(path))


if __name__ == "__main__":
    cli_help.run(cli_boundary(main))
