r"""Sample a design space and train every model briefly: python -m training.sweep.

Small sweep on the embedded digits dataset (32x32, stride-1 stem, flops scaled from the paper's
360-400MF regime), then analyze it:

  python -m training.sweep --space=regnetx --num_models=16 --epochs=2 --sweep_dir=sweeps/regnetx
  python -m training.sweep --space=anynetx_a --num_models=16 --epochs=2 --sweep_dir=sweeps/anynetx_a
  python -m training.analyze sweeps/regnetx sweeps/anynetx_a

The paper's ImageNet regime (400MF at 224, 10 epochs), split over 4 machines:

  python -m training.sweep --space=anynetx_a --num_models=500 --dataset=imagenet2012 \
      --data_dir=... --image_size=224 --stem_stride=2 --epochs=10 --shard=0/4 --sweep_dir=...

Each finished model appends one line to SWEEP_DIR/results.jsonl; rerunning (with any --shard)
skips finished models.
"""

from __future__ import annotations

from absl import app, flags, logging

from keras_regnet.design_space.sampler import scaled_flops_range
from keras_regnet.design_space.spaces import SPACES
from training.ranges import latency_budget, parse_range
from training.sweep_runner import SweepConfig, load_train_fn, parse_shard, run

FLAGS = flags.FLAGS
flags.DEFINE_enum("space", "regnetx", sorted(SPACES), "Design space to sample.")
flags.DEFINE_integer("num_models", 32, "Models in the sweep (the paper uses 500; 100 for RegNet trends).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Sampling seed; model i trains with seed*100003 + i.")
flags.DEFINE_string("flops_range", "auto",
                    "low,high flops (multiply-adds), suffixes K/M/G allowed, e.g. 360M,400M. 'auto' = the "
                    "paper's 360-400MF regime at 224 rescaled by the feature area after the stem "
                    "((image_size/stem_stride)^2 / 112^2); 'none' = unconstrained.")
flags.DEFINE_string("params_range", "none", "low,high parameter count (K/M/G suffixes) or 'none'.")
flags.DEFINE_string("acts_range", "none", "low,high activation count (K/M/G suffixes) or 'none'.")
flags.DEFINE_string("latency_range", "none",
                    "low,high milliseconds predicted by --latency_model (a model fitted by "
                    "python -m training.analyze on latency.jsonl) or 'none'.")
flags.DEFINE_string("latency_model", "", "PATH#KEY of a fitted latency model, e.g. "
                    "sweeps/lat/analysis/latency_models.json#int8@1; needed with --latency_range.")
flags.DEFINE_integer("image_size", 32, "Training resolution (and the resolution complexity is measured at).",
                     lower_bound=8)
flags.DEFINE_integer("stem_stride", 0, "Stem stride: 1 or 2; 0 = 1 below 128px, else 2 (the paper's).",
                     lower_bound=0, upper_bound=2)
flags.DEFINE_integer("stem_width", 32, "Stem output channels (the paper: 32).", lower_bound=1)
flags.DEFINE_integer("num_classes", 0, "Classes of the dataset for the head's cost; 0 = 10 for digits, "
                     "1000 otherwise.", lower_bound=0)
flags.DEFINE_string("sweep_dir", "sweeps/default", "Directory of the sweep (created if missing).")
flags.DEFINE_string("shard", "0/1", "i/n: train the models whose index is i mod n.")
flags.DEFINE_string("train_fn", "training.api:train",
                    "module:function called as fn(spec, dataset=..., epochs=..., ..., seed=...) -> dict "
                    "with top1_err and top5_err in percent.")
# Training flags, as in python -m training.main.
flags.DEFINE_string("dataset", "digits", "digits (embedded, no download) | imagenet2012 | tfrecord | folder.")
flags.DEFINE_string("data_dir", None, "Dataset location (all but digits).")
flags.DEFINE_integer("epochs", 10, "Epochs per model (the paper: 10).", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Global batch size (the paper: 128).", lower_bound=1)
flags.DEFINE_float("lr", 0.05, "Initial learning rate of the cosine schedule (the paper's sweeps: 0.05).")
flags.DEFINE_float("weight_decay", 5e-5, "Weight decay (the paper: 5e-5).")
flags.DEFINE_integer("warmup_epochs", 0, "Linear warmup epochs.", lower_bound=0)
flags.DEFINE_integer("max_steps", 0, "Cap on train steps per model; 0 = no cap.", lower_bound=0)
flags.DEFINE_bool("keep_runs", False, "Keep each model's training directory (checkpoints, TensorBoard "
                  "logs) under SWEEP_DIR/runs; otherwise the trainer uses a temporary one.")
flags.DEFINE_bool("tensorboard", True, "Write per-model errors as TensorBoard scalars to SWEEP_DIR/tensorboard.")

def build_config() -> SweepConfig:
    """The SweepConfig described by the flags (flag errors name the flag)."""
    stem_stride = FLAGS.stem_stride or (1 if FLAGS.image_size < 128 else 2)
    if FLAGS.flops_range.strip().lower() == "auto":
        flops = tuple(round(x) for x in scaled_flops_range(FLAGS.image_size, stem_stride))
    else:
        flops = parse_range(FLAGS.flops_range, "flops_range")
    try:
        parse_shard(FLAGS.shard)
    except ValueError as e:
        raise flags.ValidationError(f"--shard: {e}") from None
    if FLAGS.dataset != "digits" and not FLAGS.data_dir:
        raise flags.ValidationError(f"--data_dir is required with --dataset={FLAGS.dataset}")
    latency_range, latency_model = latency_budget(FLAGS.latency_range, FLAGS.latency_model, FLAGS.image_size)
    classes = FLAGS.num_classes or (10 if FLAGS.dataset == "digits" else 1000)
    train = {"dataset": FLAGS.dataset, "data_dir": FLAGS.data_dir, "epochs": FLAGS.epochs,
             "batch_size": FLAGS.batch_size, "image_size": FLAGS.image_size, "lr": FLAGS.lr,
             "weight_decay": FLAGS.weight_decay, "warmup_epochs": FLAGS.warmup_epochs,
             "max_steps": FLAGS.max_steps or None}
    return SweepConfig(FLAGS.space, FLAGS.num_models, FLAGS.seed, flops,
                       parse_range(FLAGS.params_range, "params_range"),
                       parse_range(FLAGS.acts_range, "acts_range"), FLAGS.image_size, stem_stride,
                       FLAGS.stem_width, classes, train, latency_range=latency_range,
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
    try:
        config = build_config()
    except flags.ValidationError as e:
        raise app.UsageError(str(e)) from None
    try:
        train_fn = load_train_fn(FLAGS.train_fn)
    except ValueError as e:
        raise app.UsageError(f"--train_fn: {e}") from None
    lo_hi = config.flops_range
    logging.info("sweep %s: %d %s models, flops %s at %dpx", FLAGS.sweep_dir, config.num_models,
                 config.space, "any" if lo_hi is None else f"{lo_hi[0] / 1e6:.2f}-{lo_hi[1] / 1e6:.2f}M",
                 config.image_size)
    on_result = _tensorboard_writer(FLAGS.sweep_dir) if FLAGS.tensorboard else None
    try:
        prog = run(FLAGS.sweep_dir, config, train_fn, parse_shard(FLAGS.shard),
                   report=lambda s: print(s, flush=True), on_result=on_result, model_dirs=FLAGS.keep_runs)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    print(f"results: {FLAGS.sweep_dir}/results.jsonl ({prog.done}/{prog.total} models done)", flush=True)


if __name__ == "__main__":
    app.run(main)
