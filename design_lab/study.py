r"""The paper's design-space study in one command: python -m design_lab.study.

Samples every space of the chain (default AnyNetX_A -> AnyNetX_C -> AnyNetX_E -> RegNetX) under one
flops budget, trains every model with the same seed and recipe, retrains a few with other seeds for
the noise floor, and writes STUDY_DIR/report/report.md: the EDFs of each adjacent pair with bootstrap
intervals, a Mann-Whitney U test and a verdict, the last space's trend panels and a chain table.

  python -m design_lab.study --n=100 --study_dir=studies/digits              # digits proxy (default)
  python -m design_lab.study --n=100 --study_dir=... --shard=1/4             # one of four processes
  python -m design_lab.study --study_dir=studies/digits --report_only        # report what is finished

The paper's setting (ImageNet at 224 px, 400MF, 10 epochs, batch 128):

  python -m design_lab.study --dataset=imagenet2012 --data_dir=... --image_size=224 --stem_stride=2 \
      --stem_width=32 --flops_range=360M,400M --epochs=10 --batch_size=128 --n=100 --study_dir=...

A killed study resumes where it stopped when run again with the same flags.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from absl import app, flags

from design_lab.budget_flags import flops_budget
from design_lab.study_plan import DEFAULT_SPACES, StudyPlan
from design_lab.sweep_runner import load_train_fn, parse_shard
from keras_regnet import cli_help, dataclass_flags
from keras_regnet.dataclass_flags import flag_field as F
from keras_regnet.design_space.spaces import SPACES
from keras_regnet.errors import cli_boundary

FLAGS = flags.FLAGS
ENGINES = ("tensorflow", "jax")


@dataclass(frozen=True)
class StudyCliConfig:
    """The flags of `python -m design_lab.study` (default and help declared once, here)."""

    spaces: tuple[str, ...] = F(DEFAULT_SPACES, "Comma-separated chain of design spaces, compared pairwise in "
                                "order (any of: " + ", ".join(sorted(SPACES)) + ").")
    n: int = F(100, "Models per space (the paper: 100-500).", lower_bound=1)
    study_dir: str = F("studies/default", "Directory of the study: one sweep directory per space, noise/ and "
                       "report/ (created if missing; an existing study is resumed).")
    shard: str = F("0/1", "i/n: this process trains the models whose index is i mod n, in every space.")
    seed: int = F(0, "Sampling seed of every space; model i of every space trains with seed*100003 + i.")
    flops_range: str = F("0.5M,2M", "low,high flops (K/M/G suffixes) shared by every space; 'auto' = the "
                         "paper's 360-400MF at 224 px rescaled to --image_size and the stem stride.")
    image_size: int = F(16, "Training resolution (and the resolution flops are measured at).", lower_bound=8)
    stem_stride: int = F(1, "Stem stride (the paper at 224 px: 2).", lower_bound=1, upper_bound=2)
    stem_width: int = F(16, "Stem output channels (the paper: 32).", lower_bound=1)
    num_classes: int = F(0, "Classes for the head's cost; 0 = 10 for digits, 1000 otherwise.", lower_bound=0)
    dataset: str = F("digits", "digits (embedded, no download) | imagenet2012 | tfrecord | folder.")
    data_dir: str | None = F(None, "Dataset location (all but digits).")
    epochs: int = F(3, "Epochs per model (the paper: 10).", lower_bound=1)
    batch_size: int = F(64, "Global batch size (the paper: 128).", lower_bound=1)
    lr: float = F(0.05, "Initial learning rate of the cosine schedule (the paper's sweeps: 0.05).")
    weight_decay: float = F(5e-5, "Weight decay (the paper: 5e-5).")
    zero_init_final_gamma: bool = F(True, "Start the last BN gamma of every residual block at zero (pycls' "
                                    "BN.ZERO_INIT_FINAL_GAMMA), so a deep sampled model starts near the identity; "
                                    "without it many models diverge in the first epoch of a 3-epoch proxy.")
    engine: str = F("tensorflow", "Training engine of every model.", choices=list(ENGINES))
    train_fn: str = F("training.api:train", "module:function called in-process as fn(spec, dataset=..., "
                      "epochs=..., ..., seed=...) -> dict with top1_err and top5_err in percent.")
    round_size: int = F(5, "Train the spaces in rounds of this many models each, so a study stopped early "
                        "holds nearly equal populations.", lower_bound=1)
    noise_models: int = F(10, "Models retrained with other seeds for the noise floor (0 = none).", lower_bound=0)
    noise_repeats: int = F(1, "Extra trainings per noise-floor model.", lower_bound=1)
    noise_after: int = F(5, "Train the noise floor once every space has this many models.", lower_bound=1)
    bootstrap_repeats: int = F(10_000, "Bootstrap resamples of the report (the paper: 10^4).", lower_bound=100)
    report_only: bool = F(False, "Only write the report from the models finished so far.")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One flag per StudyCliConfig field; defined when the CLI runs, so importing this module defines none."""
    dataclass_flags.define_flags(StudyCliConfig, flag_values)


def build_plan(opts: StudyCliConfig) -> StudyPlan:
    """The StudyPlan of the flags; errors name the flag."""
    spaces = tuple(s.strip().lower().replace("-", "_") for s in opts.spaces if s.strip())
    unknown = [s for s in spaces if s not in SPACES]
    if unknown:
        raise flags.ValidationError(f"--spaces: unknown design space(s) {unknown}; choose from {sorted(SPACES)}")
    try:
        parse_shard(opts.shard)
    except ValueError as e:
        raise flags.ValidationError(f"--shard: {e}") from e
    if opts.dataset != "digits" and not opts.data_dir:
        raise flags.ValidationError(f"--data_dir is required with --dataset={opts.dataset}")
    flops = flops_budget(opts.flops_range, opts.image_size, opts.stem_stride, (360e6, 400e6))
    train = {"dataset": opts.dataset, "data_dir": opts.data_dir, "epochs": opts.epochs,
             "batch_size": opts.batch_size, "image_size": opts.image_size, "lr": opts.lr,
             "weight_decay": opts.weight_decay, "warmup_epochs": 0, "engine": opts.engine,
             "zero_init_final_gamma": opts.zero_init_final_gamma}
    classes = opts.num_classes or (10 if opts.dataset == "digits" else 1000)
    try:
        return StudyPlan(spaces, opts.n, opts.seed, flops, opts.image_size, opts.stem_stride, opts.stem_width,
                         classes, train)
    except ValueError as e:
        raise flags.ValidationError(str(e)) from e


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    opts = dataclass_flags.from_flags(StudyCliConfig)
    try:
        plan = build_plan(opts)
    except flags.ValidationError as e:
        raise app.UsageError(str(e)) from e
    if not opts.report_only:
        from design_lab.study_run import run_study

        try:
            train = load_train_fn(opts.train_fn)
        except ValueError as e:
            raise app.UsageError(f"--train_fn: {e}") from e
        run_study(opts.study_dir, plan, train, parse_shard(opts.shard), opts.round_size, opts.noise_models,
                  opts.noise_repeats, opts.noise_after, report=lambda s: print(s, flush=True))
    from design_lab.study_report import write_report

    path = write_report(opts.study_dir, plan, opts.bootstrap_repeats)
    print(f"report: {path}", flush=True)


def _select_backend(argv: list[str]) -> None:
    """--engine=jax needs Keras' JAX backend chosen before Keras is first imported."""
    for k, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--engine=") else (
            argv[k + 1] if arg == "--engine" and k + 1 < len(argv) else None)
        if value in ENGINES:
            os.environ["KERAS_BACKEND"] = value


if __name__ == "__main__":
    _select_backend(sys.argv)
    define_flags()
    cli_help.run(cli_boundary(main))
