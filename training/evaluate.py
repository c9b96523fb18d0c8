"""`python -m training.evaluate`: top-1/top-5 of a model on ImageNet val (or any supported dataset).

    python -m training.evaluate --model regnety_600mf --weights imagenet \
        --dataset tfrecord --data_dir /data/imagenet

Eval preprocessing is the reference's: resize the shorter side to 256, centre crop 224. --weights
is "imagenet" (keras_regnet's pretrained weights), a .weights.h5/.keras/reference checkpoint path,
a training --model_dir, or "none". With folder data, the class_names.json that training wrote
beside the model must list the folder's classes in the same order (else the labels would not
mean the same classes).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from keras_regnet.errors import ConfigError, DataError, WeightsError, cli_boundary, one_line

from absl import app, flags  # noqa: E402

from keras_regnet import cli_help, dataclass_flags  # noqa: E402
from keras_regnet.dataclass_flags import flag_field as F  # noqa: E402
from training.core import config as C  # noqa: E402

FLAGS = flags.FLAGS


@dataclass(frozen=True)
class EvalConfig:
    """The flags of `python -m training.evaluate` (default and help declared once, here)."""

    model: str | None = F(None, "Zoo name (e.g. regnety_600mf), built-in name or NetSpec JSON file.", required=True)
    weights: str = F("imagenet", "imagenet, a .weights.h5/.keras/reference checkpoint path, a training "
                     "--model_dir, or none (random init).")
    dataset: str = F("imagenet2012", "imagenet2012 (TFDS), tfrecord (validation-* shards), folder, or digits "
                     "(embedded; for models trained on it).", choices=C.DATASETS)
    data_dir: str | None = F(None, "TFDS data_dir, TFRecord directory or image folder.")
    image_size: int | None = F(None, "Crop size (default: the weights' eval size: a training run's "
                               "--eval_image_size, 224 for the zoo; 32 for digits); the shorter side is resized "
                               "to image_size / crop_fraction first.")
    crop_fraction: float | None = F(None, "Eval crop fraction in (0, 1] (default: a training run's "
                                    "--eval_crop_fraction, else 0.875). Not used by digits.")
    batch_size: int = F(64, "Global eval batch size.")
    eval_examples: int | None = F(None, "Number of eval images (default: read from the data; 50000 for TFRecords).")
    label_offset: int | None = F(None, "Subtracted from TFRecord labels (default 1).")
    strategy: str = F("auto", "tf.distribute strategy.", choices=C.STRATEGIES)
    xla: str = F("auto", "XLA-compile the eval step; auto: off on CPU.", choices=C.XLA_CHOICES)
    mixed_precision: str = F("off", "Eval precision (default float32).", choices=C.PRECISIONS)

    def train_config(self) -> C.TrainConfig:
        """The TrainConfig the evaluation runs with (image size defaulted per dataset, quiet)."""
        from keras_regnet.pretrained.tags import eval_settings

        run_size, run_fraction = run_eval_transform(self.weights)
        size = self.image_size or run_size or (
            32 if self.dataset == "digits" else eval_settings(self.model, self.weights).input_size)
        fraction = self.crop_fraction if self.crop_fraction is not None else run_fraction
        return C.TrainConfig(model=self.model, dataset=self.dataset, data_dir=self.data_dir,
                             batch_size=self.batch_size, image_size=size, eval_examples=self.eval_examples,
                             eval_crop_fraction=fraction,
                             label_offset=self.label_offset, strategy=self.strategy, xla=self.xla,
                             mixed_precision=self.mixed_precision, verbose=0)


def run_eval_transform(weights: Any) -> tuple[int | None, float | None]:
    """(eval_image_size, eval_crop_fraction) recorded in the config.json of a training run's model_dir (or
    beside its model file) given as --weights; (None, None) for anything else."""
    from keras_regnet import fileio

    if not isinstance(weights, str) or weights in ("imagenet", "none") or not fileio.exists(weights):
        return None, None
    folder = weights if fileio.isdir(weights) else os.path.dirname(weights)
    path = fileio.join(folder, "config.json")
    if not fileio.exists(path):
        return None, None
    saved = fileio.read_json(path)
    return saved.get("eval_image_size"), saved.get("eval_crop_fraction")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One flag per EvalConfig field; defined when the CLI runs, so importing this module defines none."""
    dataclass_flags.define_flags(EvalConfig, flag_values)


def keras_file_layers(path: str) -> set[str] | None:
    """Names of the non-input layers of the functional model saved in a .keras file, else None."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        layers = config["config"]["layers"]
        return {layer["config"]["name"] for layer in layers if layer.get("class_name") != "InputLayer"}
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None  # not a full-model .keras file: the weight loader checks what it can


def check_same_network(weights: str, model: Any, model_flag: str) -> None:
    """ValueError naming --weights/--model when a saved full model has layers `model` lacks.

    keras_regnet loads weights by layer name and ignores extra source layers (so a full model
    also loads into a headless one); for evaluation that would silently score a RegNetX built
    from a RegNetY's file, minus its SE layers. Evaluation always builds the full model, so any
    extra layer means a different network.
    """
    saved = keras_file_layers(weights) if weights.endswith(".keras") else None
    if saved is None:
        return
    extra = sorted(saved - {layer.name for layer in model.layers})
    if extra:
        shown = ", ".join(extra[:4]) + (", ..." if len(extra) > 4 else "")
        raise WeightsError(f"--weights={weights!r} holds a different network than --model={model_flag!r} "
                          f"({len(extra)} layers it lacks: {shown}); pass the --model the file was trained "
                          f"with (its run's config.json)")


def check_class_names(weights: Any, source: Any, data_dir: Any) -> list[str] | None:
    """The model's class names (class_names.json beside its file); a folder with other classes, or
    the same classes in another order, is a ValueError naming --data_dir."""
    if not isinstance(weights, str) or weights == "imagenet":
        return None
    from keras_regnet.pretrained.load import class_names_for, resolve_weights

    path = resolve_weights(weights, label="--weights")
    names = class_names_for(path, source.num_classes)
    theirs = getattr(source, "class_names", None)
    if names is not None and theirs is not None and list(theirs) != names:
        raise DataError(f"--data_dir={data_dir!r} has the classes {theirs} but the model was trained on "
                          f"{names} (class_names.json beside {path}); evaluate on data with the same "
                          "class folders")
    return names


def evaluate(model_name: Any, weights: Any, cfg: C.TrainConfig) -> dict[str, Any]:
    """Evaluate `model_name` with `weights` on cfg's eval split; returns loss, top1_err, top5_err (%).

    Builds only what evaluation needs (the model, the eval Feed and the eval step): no optimizer,
    schedule, checkpoint or model_dir.
    """
    from keras_regnet import resolve_spec
    from training.core.metrics import accumulate
    from training.core.models import build_model, check_image_size
    from training.data import make_source
    from training.data.pipeline import data_errors, image_dtype_of
    from training.engines.tensorflow import step as steps
    from training.engines.tensorflow.assembly import variables_scope
    from training.engines.tensorflow.devices import make_runtime
    from training.engines.tensorflow.feed import Feed

    spec = resolve_spec(model_name, label="--model")
    check_image_size(spec, cfg.image_size)
    source = make_source(cfg)
    if weights == "imagenet" and source.num_classes != 1000:
        raise ConfigError(f"--weights=imagenet has 1000 classes but --dataset={cfg.dataset} has "
                          f"{source.num_classes}; pass a weights file trained on it")
    names = check_class_names(weights, source, cfg.data_dir)
    runtime = make_runtime(cfg.strategy, cfg.xla, cfg.mixed_precision)
    feed = Feed(source, cfg.batch_size, cfg.image_size, image_dtype=image_dtype_of(runtime.policy),
                strategy=runtime.strategy)
    with variables_scope(runtime):
        model = build_model(spec, cfg.image_size, source.num_classes, weights=weights,
                            zero_init_final_gamma=cfg.zero_init_final_gamma)
    if isinstance(weights, str):
        check_same_network(weights, model, str(model_name))
    eval_step = steps.distributed(runtime.strategy, steps.make_eval_step(model, source.num_classes, runtime.xla))
    t0 = time.perf_counter()
    with data_errors():
        totals = accumulate(eval_step, feed.eval(), feed.eval_steps)
    result: dict[str, Any] = totals.summary()
    result["eval_time_s"] = time.perf_counter() - t0
    result["images_per_s"] = result["examples"] / max(result["eval_time_s"], 1e-9)
    result["skipped_images"] = totals.invalid
    result["class_names"] = names
    return result


def main(argv: list[str]) -> int:
    """Print top-1/top-5 accuracy and error; flag problems are one-line errors naming the flag."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    opts = dataclass_flags.from_flags(EvalConfig)
    weights = None if opts.weights.lower() == "none" else opts.weights
    if weights not in (None, "imagenet") and not os.path.exists(weights):
        print(one_line(WeightsError(f"--weights={opts.weights!r}: no such file; use imagenet, none or a "
                                    f"path to .weights.h5/.keras")), file=sys.stderr)
        return 2
    cfg = opts.train_config()
    try:
        C.validate(cfg)
        r = evaluate(opts.model, weights, cfg)
    except ValueError as e:  # ConfigError, DataError, WeightsError: one line naming the kind
        print(one_line(e), file=sys.stderr)
        return 2
    print(f"{opts.model} ({opts.weights}) on {opts.dataset}: {int(r['examples'])} images, "
          f"{r['images_per_s']:.0f} images/s")
    if r["skipped_images"]:
        print(f"skipped undecodable images: {int(r['skipped_images'])}")
    print(f"top-1 accuracy {100 - r['top1_err']:.3f}%  top-5 accuracy {100 - r['top5_err']:.3f}%")
    print(f"top-1 error {r['top1_err']:.3f}%  top-5 error {r['top5_err']:.3f}%")
    return 0


if __name__ == "__main__":
    define_flags()
    cli_help.run(cli_boundary(main))
