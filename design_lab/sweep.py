r"""Sample a design space and train every model briefly: python -m design_lab.sweep.

Small sweep on the embedded digits dataset (32x32, stride-1 stem, flops scaled from the paper's
360-400MF regime), then analyze it:

  python -m design_lab.sweep --space=regnetx --num_models=16 --epochs=2 --sweep_dir=sweeps/regnetx
  python -m design_lab.sweep --space=anynetx_a --num_models=16 --epochs=2 --sweep_dir=sweeps/anynetx_a
  python -m design_lab.analyze sweeps/regnetx sweeps/anynetx_a

The paper's ImageNet regime (400MF at 224, 10 epochs), split over 4 machines:

  python -m design_lab.sweep --space=anynetx_a --num_models=500 --dataset=imagenet2012 \
      --data_dir=... --image_size=224 --stem_stride=2 --epochs=10 --shard=0/4 --sweep_dir=...

Each finished model appends one line to SWEEP_DIR/results.jsonl; rerunning (with any --shard)
skips finished models.
"""

from __future__ import annotations

from dataclasses import dataclass

from absl import app, flags

from keras_regnet import cli_help, dataclass_flags
from keras_regnet.dataclass_flags import flag_field as F
from keras_regnet.design_space.sampler import PAPER_FLOPS
from keras_regnet.design_space.spaces import SPACES
from keras_regnet.errors import ConfigError, cli_boundary
from training.core.config import TrainConfig
from design_lab.budget_flags import flops_budget, latency_budget, parse_range
from design_lab.sweep_runner import SweepConfig, load_train_fn, parse_shard, run

FLAGS = flags.FLAGS


@dataclass(frozen=True)
class SweepCliConfig:
    """The flags of `python -m design_lab.sweep` (default and help declared once, here).

    Parsed into the sweep's own `sweep_runner.SweepConfig` (what is sampled, how models train) by
    `build_config`.
    """

    space: str = F("regnetx", "Design space to sample.", choices=sorted(SPACES))
    num_models: int = F(32, "Models in the sweep (the paper uses 500; 100 for RegNet trends).", lower_bound=1)
    seed: int = F(0, "Sampling seed; model i trains with seed*100003 + i.")
    flops_range: str = F("auto", "low,high flops (multiply-adds), suffixes K/M/G allowed, e.g. 360M,400M. "
                         "'auto' = the paper's 360-400MF regime at 224 rescaled by the feature area after the "
                         "stem ((image_size/stem_stride)^2 / 112^2); 'none' = unconstrained.")
    params_range: str = F("none", "low,high parameter count (K/M/G suffixes) or 'none'.")
    acts_range: str = F("none", "low,high activation count (K/M/G suffixes) or 'none'.")
    latency_range: str = F("none", "low,high milliseconds predicted by --latency_model (a model fitted by "
                           "python -m design_lab.analyze on latency.jsonl) or 'none'.")
    latency_model: str = F("", "PATH#KEY of a fitted latency model, e.g. "
                           "sweeps/lat/analysis/latency_models.json#int8@1; needed with --latency_range.")
    image_size: int = F(32, "Training resolution (and the resolution complexity is measured at).", lower_bound=8)
    stem_stride: int = F(0, "Stem stride: 1 or 2; 0 = 1 below 128px, else 2 (the paper's).",
                         lower_bound=0, upper_bound=2)
    stem_width: int = F(32, "Stem output channels (the paper: 32).", lower_bound=1)
    num_classes: int = F(0, "Classes of the dataset for the head's cost; 0 = 10 for digits, 1000 otherwise.",
                         lower_bound=0)
    sweep_dir: str = F("sweeps/default", "Directory of the sweep (created if missing).")
    shard: str = F("0/1", "i/n: train the models whose index is i mod n.")
    train_fn: str = F("training.api:train", "module:function called as fn(spec, dataset=..., epochs=..., ..., "
                      "seed=...) -> dict with top1_err and top5_err in percent.")
    # Training settings, as in python -m training.main (with the paper's sweep recipe as defaults).
    dataset: str = F("digits", "digits (embedded, no download) | imagenet2012 | tfrecord | folder.")
    data_dir: str | None = F(None, "Dataset location (all but digits).")
    epochs: int = F(10, "Epochs per model (the paper: 10).", lower_bound=1)
    batch_size: int = F(128, "Global batch size (the paper: 128).", lower_bound=1)
    lr: float = F(0.05, "Initial learning rate of the cosine schedule (the paper's sweeps: 0.05).")
    weight_decay: float = F(TrainConfig.weight_decay, "Weight decay (the paper: 5e-5).")
    warmup_epochs: int = F(0, "Linear warmup epochs.", lower_bound=0)
    max_steps: int = F(0, "Cap on train steps per model; 0 = no cap.", lower_bound=0)
    keep_runs: bool = F(False, "Keep each model's training directory (checkpoints, TensorBoard logs) under "
                        "SWEEP_DIR/runs; otherwise the trainer uses a temporary one.")
    tensorboard: bool = F(True, "Write per-model errors as TensorBoard scalars to SWEEP_DIR/tensorboard.")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One flag per SweepCliConfig field; defined when the CLI runs, so importing this module defines none."""
    dataclass_flags.define_flags(SweepCliConfig, flag_values)


def build_config(opts: SweepCliConfig | None = None) -> SweepConfig:
    """The SweepConfig described by `opts` (default: the parsed flags); errors name the flag."""
    opts = opts if opts is not None else dataclass_flags.from_flags(SweepCliConfig)
    stem_stride = opts.stem_stride or (1 if opts.image_size < 128 else 2)
    flops = flops_budget(opts.flops_range, opts.image_size, stem_stride, PAPER_FLOPS)
    try:
        parse_shard(opts.shard)
    except ValueError as e:
        raise flags.ValidationError(f"--shard: {e}") from e
    if opts.dataset != "digits" and not opts.data_dir:
        raise flags.ValidationError(f"--data_dir is required with --dataset={opts.dataset}")
    latency_range, latency_model = latency_budget(opts.latency_range, opts.latency_model, opts.image_size)
    classes = opts.num_classes or (10 if opts.dataset == "digits" else 1000)
    train = {"dataset": opts.dataset, "data_dir": opts.data_dir, "epochs": opts.epochs,
             "batch_size": opts.batch_size, "image_size": opts.image_size, "lr": opts.lr,
             "weight_decay": opts.weight_decay, "warmup_epochs": opts.warmup_epochs,
             "max_steps": opts.max_steps or None}
    return SweepConfig(opts.space, opts.num_models, opts.seed, flops,
                       parse_range(opts.params_range, "params_range"),
                       parse_range(opts.acts_range, "acts_range"), opts.image_size, stem_stride,
                       opts.stem_width, classes, train, latency_range=latency_range,
                       latency_model=latency_model)


def _tensorboard_writer(sweep_dir: str):
    """A callback writing each result as TensorBoard scalars (step = model index).

    Uses tf.summary.write with the scalars-plugin metadata, so no tensorboard package is needed.
    """
    import tensorflow as tf  # the trainer loads TensorFlow anyway
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    writer = tf.summary.create_file_writer(f"{sweep_dir}/tensorboard")

    def write(record: dict) -> None:
        values = {k: record[k] for k in ("top1_err", "top5_err", "train_time_s")}
        values["mflops"] = record["complexity"]["flops"] / 1e6
        with writer.as_default():
            for k, v in values.items():
                tf.summary.write(f"sweep/{k}", tf.constant(float(v), tf.float32), step=record["index"],
                                 metadata=meta)
        writer.flush()

    return write


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    opts = dataclass_flags.from_flags(SweepCliConfig)
    try:
        config = build_config(opts)
    except flags.ValidationError as e:
        raise app.UsageError(str(e)) from e
    try:
        train_fn = load_train_fn(opts.train_fn)
    except ValueError as e:
        raise ConfigError(f"--train_fn: {e}") from e
    lo_hi = config.flops_range
    flops = "any" if lo_hi is None else f"{lo_hi[0] / 1e6:.2f}-{lo_hi[1] / 1e6:.2f}M"
    print(f"sweep {opts.sweep_dir}: {config.num_models} {config.space} models, flops {flops} at "
          f"{config.image_size}px", flush=True)
    on_result = _tensorboard_writer(opts.sweep_dir) if opts.tensorboard else None
    prog = run(opts.sweep_dir, config, train_fn, parse_shard(opts.shard),
               report=lambda s: print(s, flush=True), on_result=on_result, model_dirs=opts.keep_runs)
    print(f"results: {opts.sweep_dir}/results.jsonl ({prog.done}/{prog.total} models done)", flush=True)


if __name__ == "__main__":
    define_flags()
    cli_help.run(cli_boundary(main))
