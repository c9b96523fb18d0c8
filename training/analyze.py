r"""Compare finished sweeps: python -m training.analyze SWEEP_DIR [SWEEP_DIR ...].

Writes to --out_dir (default: FIRST_SWEEP_DIR/analysis): the error EDFs of all sweeps (plain and
complexity-normalized) with min/mean error in the legend, per-sweep parameter-vs-error plots with
the bootstrap best range, the per-block widths of the best and worst models, e_fit vs error (all
as PNG and SVG), and report.md; then prints where everything went.
"""

from __future__ import annotations

import os

from absl import app, flags

from training.sweep_report import analyze

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "", "Output directory; default FIRST_SWEEP_DIR/analysis.")
flags.DEFINE_integer("bootstrap_repeats", 10_000, "Bootstrap resamples (the paper: 10^4).", lower_bound=1)
flags.DEFINE_integer("top", 3, "Best / worst models to list and draw per sweep.", lower_bound=1)
flags.DEFINE_bool("normalized", True, "Also plot the complexity-normalized EDF.")


def main(argv: list[str]) -> None:
    sweep_dirs = argv[1:]
    if not sweep_dirs:
        raise app.UsageError("give one or more sweep directories: python -m training.analyze SWEEP_DIR ...")
    out_dir = FLAGS.out_dir or os.path.join(sweep_dirs[0], "analysis")
    try:
        result = analyze(sweep_dirs, out_dir, FLAGS.bootstrap_repeats, FLAGS.normalized, FLAGS.top)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    print(f"report: {result['report']}")
    for key, paths in result["figures"].items():
        print(f"{key}: {' '.join(paths)}")


if __name__ == "__main__":
    app.run(main)
