"""TrainConfig: every knob of a run, declared in four groups (data, recipe, runtime, output), with
dataset presets and validation.

Shared by the absl CLI (training.main), the library entry point (training.api) and the tests, so
all three validate the same way; errors name the CLI flag (`--batch_size`) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from keras_regnet import fileio
from keras_regnet.dataclass_flags import flag_field as F
from keras_regnet.errors import ConfigError

DATASETS = ("digits", "imagenet2012", "tfrecord", "folder")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
XLA_CHOICES = ("auto", "on", "off")
PRECISIONS = ("auto", "off", "float16", "bfloat16")
CROPS = ("pycls", "tf_inception")
ENGINES = ("auto", "tensorflow", "jax")
VERBOSITY = (0, 1, 2)
AUGMENTS = ("none", "randaugment", "trivialaugment", "augmix")  # training.data.policies.POLICIES
OPTIMIZERS = ("sgd", "adamw")  # training.core.recipe.OPTIMIZERS (kept here: the config imports no Keras)
RECIPE_WARMUP_EPOCHS = 5.0
RECIPE_PRECISE_BN_IMAGES = 8192  # pycls BN.NUM_SAMPLES_PRECISE (BN.USE_PRECISE_STATS is on by default)
DEFAULT_MODEL = "regnety_digits"

# Per-dataset defaults for the fields left as None: (epochs, batch size, image size, ckpt every).
_PRESETS = {
    "digits": (20, 64, 32, 100),
    "folder": (30, 64, 224, 500),
    "imagenet2012": (100, None, 224, 1000),
    "tfrecord": (100, None, 224, 1000),
}


@dataclass(frozen=True)
class DataConfig:
    """What the run reads: the dataset, its resolution and augmentation crop, and the input service."""

    flag_group: ClassVar[str] = "data"

    dataset: str = F("digits", "digits: scikit-learn's handwritten digits (embedded, no download); "
                     "imagenet2012: TFDS; tfrecord: ImageNet TFRecord shards; folder: one sub-folder per class.",
                     choices=DATASETS)
    data_dir: str | None = F(None, "Dataset directory (TFDS data_dir, TFRecord shards or image folder).")
    image_size: int | None = F(None, "Training/eval resolution (default: 32 for digits, 224 otherwise).")
    crop: str = F("pycls", "Random-resized-crop sampler of the train augmentation: pycls (the reference's: "
                  "area uniform in 8-100%, aspect 3/4-4/3, up to 10 tries, else a centre crop) or tf_inception "
                  "(tf.image's sampled distorted bounding box: smaller crops on average).", choices=CROPS)
    eval_image_size: int | None = F(None, "Eval resolution, when it differs from --image_size (e.g. train at 224, "
                                    "evaluate at 256: the exported model.keras takes it as its input size and "
                                    "python -m training.evaluate defaults to it). Default: --image_size.")
    eval_crop_fraction: float | None = F(None, "Eval crop: the shorter side is resized to size / this, then the "
                                         "centre size x size kept (pycls/timm convention). Default 0.875, the "
                                         "paper's (256 for 224). Encoded-image datasets only (not digits).")
    augment: str = F("none", "Augmentation policy after the random-sized crop (CPU, tf.data): none (the paper), "
                     "randaugment (timm's rand-m9-mstd0.5: 2 of 15 ops, each applied with probability 0.5), "
                     "trivialaugment (torchvision's TrivialAugmentWide: 1 of 14 ops at a random magnitude) or "
                     "augmix (timm's augmix-m3-w3: 3 chains of 1-3 ops mixed with the image).", choices=AUGMENTS)
    augment_magnitude: float | None = F(None, "--augment=randaugment: the magnitude on timm's 0-10 scale "
                                        "(default 9); augmix: the severity (default 3).")
    augment_num_ops: int | None = F(None, "--augment=randaugment: ops drawn per image (default 2).")
    augment_magnitude_std: float | None = F(None, "--augment=randaugment: std of the per-op magnitude noise "
                                            "(default 0.5, timm's mstd0.5; 0: a fixed magnitude).")
    random_erasing: float = F(0.0, "Random erasing (timm's, pixel mode): the probability that a box of 0.02-1/3 of "
                              "each training image's area is replaced by noise (e.g. 0.25). 0: off.")
    val_fraction: float | None = F(None, "--dataset=folder without train/ and val/ sub-folders: hold out this "
                                   "fraction of each class (seeded by --seed; the split is written to "
                                   "model_dir/split.json). Unset: every 10th file.")
    train_examples: int | None = F(None, "Training set size when it cannot be read from the data (default: "
                                   "1281167 for ImageNet TFRecords).")
    eval_examples: int | None = F(None, "Eval set size (default: 50000 for ImageNet TFRecords).")
    label_offset: int | None = F(None, "Subtracted from TFRecord labels (default 1: 1..1000 -> 0..999).")
    data_service: str | None = F(None, "Run the train transform on tf.data service workers: the dispatcher's "
                                 "grpc://HOST:PORT (start it and the workers with python -m training.data_service). "
                                 "Dynamic sharding: each record at most once per epoch pass, other order than local; "
                                 "eval stays local (docs/training.md).")
    input_only: bool = F(False, "Measure this host's input pipeline for the configured dataset and transform "
                         "(images/s and CPU ms per image over --max_steps batches, default 20) instead of training, "
                         "and print the cores or service workers needed for --target_images_per_s.")
    target_images_per_s: float | None = F(None, "With --input_only: the accelerator's train rate to plan for "
                                          "(e.g. 13900 for RegNetY-600MF on one H200).")


@dataclass(frozen=True)
class RecipeConfig:
    """What is trained and how: the network, its starting weights, schedule, regularisers, BN and seed."""

    flag_group: ClassVar[str] = "recipe"

    model: str = F(DEFAULT_MODEL, "Zoo name (e.g. regnety_600mf or RegNetY-600MF), a built-in small model "
                   "(regnety_digits, regnetx_digits) or a NetSpec JSON file.")
    weights: str | None = F(None, "Start from pretrained weights (fine-tuning): imagenet, a .keras / "
                            ".weights.h5 / reference checkpoint (.safetensors, .npz, .pth) file, or an earlier "
                            "--model_dir. The classifier is re-initialised when the class count differs. Switches "
                            "the unset --epochs/--lr/--warmup_epochs to the fine-tuning recipe (docs/training.md).")
    freeze: str = F("none", "With --weights: none, backbone (all but the classifier) or a comma-separated list "
                    "of stem and stages (e.g. stem,s1,s2). Frozen layers, BatchNorm included, run in inference mode.")
    epochs: int | None = F(None, "Training epochs (default: 20 for digits, 30 for folder, 100 for ImageNet).")
    batch_size: int | None = F(None, "Global batch size over all replicas (default: 64 for digits/folder; the "
                               "zoo recipe's batch for ImageNet, e.g. 1024 for RegNetY-600MF).")
    lr: float | None = F(None, "Base learning rate (default: the recipe's 0.1 x batch_size / 128).")
    warmup_epochs: float | None = F(None, "Linear LR warmup length in epochs (default: the recipe's 5, or half "
                                    "the run when --epochs < 10).")
    warmup_factor: float = F(0.1, "Warmup starts at this fraction of the base LR.")
    weight_decay: float = F(5e-5, "Coupled L2 weight decay (added to the gradients, as pycls).")
    momentum: float = F(0.9, "Nesterov momentum of SGD.")
    optimizer: str = F("sgd", "sgd: Nesterov SGD with --weight_decay added to the gradients (coupled L2, the "
                       "paper). adamw: AdamW (--adam_beta1/--adam_beta2, eps 1e-8) with --weight_decay decoupled "
                       "(w -= lr * wd * w each step, torch's AdamW; e.g. 0.05).", choices=OPTIMIZERS)
    adam_beta1: float = F(0.9, "With --optimizer=adamw: the first-moment decay beta1 in [0, 1).")
    adam_beta2: float = F(0.999, "With --optimizer=adamw: the second-moment decay beta2 in [0, 1).")
    decay_norm_and_bias: bool = F(True, "Apply --weight_decay to BatchNorm gammas/betas and biases too (the "
                                  "paper). --nodecay_norm_and_bias decays only conv and dense kernels (timm's "
                                  "rule: no decay on 1-D parameters).")
    drop_path_rate: float = F(0.0, "Stochastic depth: the last residual block's branch is dropped per sample "
                              "with this probability in training, earlier blocks' linearly less from 0 at the "
                              "first (timm's rule; e.g. 0.05). Inference is unchanged. 0: off.")
    label_smoothing: float = F(0.0, "Label smoothing (the paper uses none).")
    ema_decay: float = F(0.0, "Keep an exponential moving average of the weights (and BN statistics) with "
                         "this decay per step, e.g. 0.9999; evaluate and export it. 0: off. The average spans "
                         "about 1 / (1 - decay) steps: keep that well below the run's total steps.")
    mixup_alpha: float = F(0.0, "Mixup: blend image i of each training batch with image B-1-i, weight ~ "
                           "Beta(alpha, alpha), soft labels (e.g. 0.2). 0: off.")
    cutmix_alpha: float = F(0.0, "CutMix: paste a box of image B-1-i into image i of each training batch, "
                            "pasted area ~ 1 - Beta(alpha, alpha), labels weighted by area (e.g. 1.0). 0: off.")
    mixup_switch_prob: float = F(0.5, "With both --mixup_alpha and --cutmix_alpha > 0: the probability that "
                                 "a batch uses CutMix instead of mixup.")
    zero_init_final_gamma: bool = F(False, "Zero-init the last BN gamma of every residual block.")
    bn_batch: int | None = F(None, "Images per BatchNorm normalization (ghost batch norm over sub-batches of "
                             "this size on each replica; must divide the per-replica batch). The paper normalizes "
                             "over 128 images per GPU: --bn_batch=128 reproduces that on one GPU or a TPU core "
                             "with another batch. Default: the per-replica batch (the global batch with --sync_bn).")
    accum_steps: int = F(1, "Gradient accumulation: split each replica's share of --batch_size into this many "
                         "micro-batches run one after the other, their gradients summed into one update (memory "
                         "of one micro-batch; --batch_size, the LR rule and the schedule stay those of the whole "
                         "batch). BatchNorm normalizes each micro-batch (--bn_batch must divide it). 1: off.")
    sync_bn: bool = F(False, "Synchronise BatchNorm statistics across replicas.")
    precise_bn_images: int | None = F(None, "Before each eval, replace the BN moving averages by the average "
                                      "batch statistics of this many training images under the current weights "
                                      "(pycls's precise BN). 0: off. Default: 8192 for ImageNet, as the "
                                      "reference; 0 for digits and folder.")
    seed: int = F(0, "Seed of initialisation, data order and augmentation.")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how it executes: the engine, devices and processes, XLA, precision, determinism."""

    flag_group: ClassVar[str] = "runtime"

    engine: str = F("auto", "Training engine over the same recipe. tensorflow: tf.distribute + tf.function. jax: "
                    "Keras 3 on JAX, one jitted update over all devices (jax.sharding). auto: Keras' backend "
                    "(KERAS_BACKEND=jax selects jax). Read before Keras is imported.", choices=ENGINES)
    strategy: str = F("auto", "tf.distribute strategy; auto: tpu if --tpu, multi-worker if TF_CONFIG lists "
                      "several tasks, mirrored on >1 GPU, else one device.", choices=STRATEGIES)
    tpu: str | None = F(None, "TPU name or address for --strategy=tpu.")
    coordinator_address: str | None = F(None, "JAX engine on several hosts: HOST:PORT of process 0 for "
                                        "jax.distributed.initialize (default: $JAX_COORDINATOR_ADDRESS; unset: "
                                        "one host, or what JAX detects on TPU VMs and SLURM).")
    num_processes: int | None = F(None, "JAX engine on several hosts: number of processes (default: "
                                  "$JAX_NUM_PROCESSES).")
    process_id: int | None = F(None, "JAX engine on several hosts: this process's index, 0 being the chief "
                               "(default: $JAX_PROCESS_ID).")
    xla: str = F("auto", "XLA-compile the forward/backward pass; auto: on for GPU/TPU, off for CPU.",
                 choices=XLA_CHOICES)
    mixed_precision: str = F("auto", "auto: bfloat16 on TPU and on GPUs with compute capability >= 8.0, "
                             "float16 (dynamic loss scaling, skips agreed by all replicas) on 7.x GPUs, float32 "
                             "otherwise. off: float32 throughout, as the paper trained.", choices=PRECISIONS)
    deterministic: bool = F(False, "Deterministic tf.data element order and TensorFlow ops (slower): a killed "
                            "and resumed run ends with the weights of an uninterrupted one.")
    compilation_cache_dir: str | None = F(None, "JAX engine: persistent XLA compilation cache, so a restarted, "
                                          "resumed or repeated run loads its compiled step instead of compiling "
                                          "it again (default: $XDG_CACHE_HOME or ~/.cache, then "
                                          "keras_regnet/jax_compilation_cache; none: off). The TensorFlow engine "
                                          "ignores it.")
    preemption_signal: str = F("SIGUSR1", "Besides SIGTERM, the signal taken as a preemption notice (e.g. "
                               "SIGUSR1 for SLURM's --signal=USR1@60; none: SIGTERM only). On a notice the run "
                               "finishes its step, checkpoints it and exits with code 75 (docs/training.md).")
    preemption_grace_s: float = F(60.0, "After a preemption notice, exit (code 75) at the latest this many "
                                  "seconds later even if no step boundary was reached (the last checkpoint stays).")


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes: its directory, checkpoints, resumption, length cap and console verbosity."""

    flag_group: ClassVar[str] = "output"

    model_dir: str | None = F(None, "Checkpoints, TensorBoard logs, metrics.json and model.keras (default: "
                              "runs/<model>-<dataset>).")
    resume: bool = F(True, "Resume from the latest checkpoint in --model_dir (--noresume: refuse to reuse a "
                     "directory with checkpoints).")
    checkpoint_every: int | None = F(None, "Also checkpoint every N steps (default: 100 for digits, 500 folder, "
                                     "1000 ImageNet); always at each epoch end.")
    keep_checkpoints: int = F(3, "Checkpoints kept in --model_dir/checkpoints.")
    eval_every: int = F(1, "Evaluate every N epochs (the last epoch always does; the raw weights beside the "
                        "EMA's only then): each skipped eval is a pass over the eval split saved.")
    max_steps: int | None = F(None, "Stop after this many steps in total (short runs, tests).")
    verbose: int = F(1, "0: quiet, 1: progress bar, 2: one line per epoch.")


@dataclass(frozen=True)
class TrainConfig(RecipeConfig, DataConfig, RuntimeConfig, OutputConfig):
    """One training run: the four groups' fields, read flat (cfg.lr). None means "the recipe/preset default"
    and is filled by `resolve`.

    Each field is a flag of `python -m training.main` (training.flags generates them, listed by group in
    --helpfull): its default and help text are declared on its group's field only. As Model Garden's
    ExperimentConfig separates task, trainer and runtime, `group(name)` gives one group's values.
    """

    GROUPS: ClassVar[tuple[type, ...]] = (DataConfig, RecipeConfig, RuntimeConfig, OutputConfig)

    def group(self, name: str) -> Any:
        """The `name` group's values ("data", "recipe", "runtime" or "output") as that group's dataclass."""
        for cls in self.GROUPS:
            if cls.flag_group == name:
                return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})
        raise ConfigError(f"TrainConfig has no group {name!r}; choose {', '.join(c.flag_group for c in self.GROUPS)}")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def resolve(cfg: TrainConfig, zoo_batch: int | None = None) -> TrainConfig:
    """Validate `cfg` and fill the None fields from the dataset preset and the paper's recipe."""
    validate(cfg)
    epochs, batch, size, every = _PRESETS[cfg.dataset]
    batch = cfg.batch_size or batch or zoo_batch or 256
    changes: dict[str, Any] = {
        "epochs": cfg.epochs or epochs,
        "warmup_epochs": cfg.warmup_epochs if cfg.warmup_epochs is not None else min(
            RECIPE_WARMUP_EPOCHS, (cfg.epochs or epochs) / 2),
        "batch_size": batch,
        "image_size": cfg.image_size or size,
        "checkpoint_every": cfg.checkpoint_every or every,
        "model_dir": cfg.model_dir or default_model_dir(cfg.model, cfg.dataset, _engine_suffix(cfg)),
        "precise_bn_images": cfg.precise_bn_images if cfg.precise_bn_images is not None else (
            RECIPE_PRECISE_BN_IMAGES if cfg.dataset in ("imagenet2012", "tfrecord") else 0),
    }
    if cfg.epochs is None and cfg.warmup_epochs is not None and cfg.warmup_epochs > epochs:
        raise ConfigError(f"--warmup_epochs={cfg.warmup_epochs} exceeds --epochs={epochs} (the "
                         f"--dataset={cfg.dataset} default); use --warmup_epochs <= --epochs or pass --epochs")
    if cfg.lr is None:
        from training.core.batch_fit import default_lr

        changes["lr"] = default_lr(batch, finetuning=cfg.weights is not None)
    if cfg.weights is not None:
        changes.update(_finetune_defaults(cfg))
    return cfg.replace(**changes)


def _finetune_defaults(cfg: TrainConfig) -> dict[str, Any]:
    """With --weights: the fine-tuning recipe (training.core.finetune) for the fields left unset."""
    from training.core import finetune

    epochs = cfg.epochs or finetune.FINETUNE_EPOCHS
    if cfg.warmup_epochs is not None and cfg.warmup_epochs > epochs:
        raise ConfigError(f"--warmup_epochs={cfg.warmup_epochs} exceeds --epochs={epochs} (the fine-tuning "
                         "default with --weights); use --warmup_epochs <= --epochs or pass --epochs")
    out: dict[str, Any] = {"epochs": epochs}
    if cfg.warmup_epochs is None:
        out["warmup_epochs"] = finetune.FINETUNE_WARMUP_FRACTION * epochs
    return out


def default_model_dir(model: str, dataset: str, suffix: str = "") -> str:
    """./runs/<model>-<dataset><suffix>, with a JSON spec path reduced to its file stem."""
    stem = os.path.splitext(os.path.basename(model))[0] if model.endswith(".json") else model
    return os.path.join("runs", f"{stem}-{dataset}{suffix}")


def _engine_suffix(cfg: TrainConfig) -> str:
    """'-jax' for the JAX engine, whose checkpoints the TensorFlow engine cannot resume (and back)."""
    from training.core.engine_choice import engine_of

    return "-jax" if engine_of(cfg) == "jax" else ""


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError (a ValueError) naming the flag for any bad or contradictory setting."""
    _choice("dataset", cfg.dataset, DATASETS)
    _choice("strategy", cfg.strategy, STRATEGIES)
    _choice("xla", cfg.xla, XLA_CHOICES)
    _choice("mixed_precision", cfg.mixed_precision, PRECISIONS)
    _choice("crop", cfg.crop, CROPS)
    _positive_int_or_none("bn_batch", cfg.bn_batch)
    if cfg.precise_bn_images is not None and (isinstance(cfg.precise_bn_images, bool) or not isinstance(
            cfg.precise_bn_images, int) or cfg.precise_bn_images < 0):
        raise ConfigError(f"--precise_bn_images must be an integer >= 0 (0 turns it off; the reference "
                         f"uses 8192), got {cfg.precise_bn_images!r}")
    if cfg.bn_batch is not None and cfg.sync_bn:
        raise ConfigError(f"--bn_batch={cfg.bn_batch} (ghost batch normalization per replica) cannot be "
                         f"combined with --sync_bn (statistics over the global batch); choose one")
    for name in ("epochs", "batch_size", "image_size", "checkpoint_every", "max_steps",
                 "train_examples", "eval_examples"):
        _positive_int_or_none(name, getattr(cfg, name))
    _positive_int_or_none("keep_checkpoints", cfg.keep_checkpoints)
    _positive_int_or_none("accum_steps", cfg.accum_steps)
    _positive_int_or_none("eval_every", cfg.eval_every)
    if cfg.image_size is not None and cfg.image_size < 8:
        raise ConfigError(f"--image_size must be >= 8, got {cfg.image_size}")
    if cfg.lr is not None and not (_is_finite(cfg.lr) and cfg.lr > 0):
        raise ConfigError(f"--lr must be a finite number > 0, got {cfg.lr}")
    for name, lo, hi in (("warmup_factor", 0.0, 1.0), ("momentum", 0.0, 1.0),
                         ("label_smoothing", 0.0, 1.0)):
        value = getattr(cfg, name)
        if not lo <= value <= hi or (name == "label_smoothing" and value == 1.0):
            raise ConfigError(f"--{name} must be in [{lo}, {hi}{']' if name != 'label_smoothing' else ')'}, got {value}")
    _check_regularisers(cfg)
    _check_augment(cfg)
    _check_eval_size(cfg)
    _check_optimizer(cfg)
    if cfg.warmup_epochs is not None and not (_is_finite(cfg.warmup_epochs) and cfg.warmup_epochs >= 0):
        raise ConfigError(f"--warmup_epochs must be a finite number >= 0, got {cfg.warmup_epochs}")
    if cfg.epochs is not None and cfg.warmup_epochs is not None and cfg.warmup_epochs > cfg.epochs:
        raise ConfigError(f"--warmup_epochs={cfg.warmup_epochs} exceeds --epochs={cfg.epochs}; "
                         f"use --warmup_epochs <= --epochs")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed < 2**31:
        raise ConfigError(f"--seed must be an integer in [0, 2**31), got {cfg.seed!r}")
    if not (_is_finite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise ConfigError(f"--weight_decay must be a finite number >= 0, got {cfg.weight_decay}")
    if cfg.verbose not in VERBOSITY:
        raise ConfigError(f"--verbose must be one of {', '.join(map(str, VERBOSITY))} "
                         f"(0 quiet, 1 progress bar, 2 a line per epoch), got {cfg.verbose!r}")
    if cfg.dataset != "digits" and not cfg.data_dir:
        raise ConfigError(f"--dataset={cfg.dataset} needs --data_dir (only 'digits' is embedded)")
    if cfg.data_dir and not fileio.isdir(cfg.data_dir):
        raise ConfigError(f"--data_dir={cfg.data_dir!r} is not an existing directory")
    if cfg.dataset == "digits" and cfg.data_dir:
        raise ConfigError("--data_dir is not used by --dataset=digits (embedded in scikit-learn); "
                         "drop --data_dir or choose --dataset=imagenet2012|tfrecord|folder")
    _check_dataset_only_flags(cfg)
    if cfg.tpu and cfg.strategy not in ("tpu", "auto"):
        raise ConfigError(f"--tpu is only used with --strategy=tpu, got --strategy={cfg.strategy}")
    from training.core.engine_choice import check_engine, engine_of

    check_engine(cfg)
    if cfg.sync_bn and cfg.xla == "on" and engine_of(cfg) == "tensorflow":
        raise ConfigError("--sync_bn cannot be combined with --xla=on (the cross-replica BN statistics "
                         "cannot run inside the compiled step); use --xla=off or --nosync_bn")
    if cfg.mixed_precision == "float16" and cfg.strategy == "tpu":
        raise ConfigError("--mixed_precision=float16 is not supported on TPU; use bfloat16 or auto")
    _check_finetune(cfg)
    _check_input_flags(cfg)
    from training.core.preemption import check_signal

    check_signal(cfg.preemption_signal)
    if not (_is_finite(cfg.preemption_grace_s) and cfg.preemption_grace_s > 0):
        raise ConfigError(f"--preemption_grace_s must be a finite number of seconds > 0, "
                          f"got {cfg.preemption_grace_s!r}")


def _check_input_flags(cfg: TrainConfig) -> None:
    """--data_service is an address and serves encoded images; --target_images_per_s plans --input_only."""
    if cfg.data_service is not None:
        from training.core.service_address import parse_address

        parse_address("data_service", cfg.data_service)
        if cfg.dataset == "digits":
            raise ConfigError("--data_service serves encoded images (imagenet2012, tfrecord, folder); "
                             "--dataset=digits is embedded pixels: drop --data_service")
        if cfg.deterministic:
            raise ConfigError("--deterministic cannot be combined with --data_service (a served epoch's order "
                             "depends on which worker is faster); drop one of them")
    if cfg.target_images_per_s is not None:
        if not _is_finite(cfg.target_images_per_s) or cfg.target_images_per_s <= 0:
            raise ConfigError(f"--target_images_per_s must be a finite number > 0 (e.g. 13900), "
                             f"got {cfg.target_images_per_s!r}")
        if not cfg.input_only:
            raise ConfigError("--target_images_per_s plans capacity for --input_only; add --input_only")


def _check_finetune(cfg: TrainConfig) -> None:
    """--weights names something loadable; --freeze parses and has weights to hold; --val_fraction."""
    from training.core import finetune

    if cfg.weights is not None:
        if not isinstance(cfg.weights, str) or not cfg.weights:
            raise ConfigError(f"--weights must be imagenet, a weights file or a run directory; got {cfg.weights!r}")
        if cfg.weights != "imagenet" and not fileio.exists(cfg.weights):
            raise ConfigError(f"--weights={cfg.weights!r} does not exist; use imagenet, a .keras / "
                             ".weights.h5 / reference checkpoint file or an earlier --model_dir")
    if finetune.parse_freeze(cfg.freeze) and cfg.weights is None:
        raise ConfigError(f"--freeze={cfg.freeze} needs --weights (frozen random layers never learn); "
                         "pass --weights=imagenet or a file, or --freeze=none")
    if cfg.val_fraction is not None:
        if not _is_real(cfg.val_fraction) or not 0.0 < cfg.val_fraction < 1.0:
            raise ConfigError(f"--val_fraction must be in (0, 1), got {cfg.val_fraction!r}")
        if cfg.dataset != "folder":
            raise ConfigError(f"--val_fraction is only used by --dataset=folder, not --dataset={cfg.dataset}")


def _check_dataset_only_flags(cfg: TrainConfig) -> None:
    """--train_examples/--eval_examples (ImageNet readers) and --label_offset (TFRecord) are not ignored elsewhere."""
    users = {"train_examples": ("imagenet2012", "tfrecord"), "eval_examples": ("imagenet2012", "tfrecord"),
             "label_offset": ("tfrecord",)}
    for name, datasets in users.items():
        if getattr(cfg, name) is not None and cfg.dataset not in datasets:
            raise ConfigError(f"--{name} is only used by --dataset={'|'.join(datasets)}, not "
                             f"--dataset={cfg.dataset} (whose sizes and labels come from the data); drop it")


def _check_regularisers(cfg: TrainConfig) -> None:
    """EMA decay in [0, 1) (0: off); mixup/cutmix alphas >= 0 (0: off); switch probability in [0, 1]."""
    if not _is_real(cfg.ema_decay) or not 0.0 <= cfg.ema_decay < 1.0:
        raise ConfigError(f"--ema_decay must be in [0, 1) (0 turns EMA off; e.g. 0.9999), got {cfg.ema_decay!r}")
    for name in ("mixup_alpha", "cutmix_alpha"):
        value = getattr(cfg, name)
        if not _is_real(value) or not 0.0 <= value < float("inf"):
            raise ConfigError(f"--{name} must be a finite number >= 0 (0 turns it off; e.g. 0.2 or 1.0), "
                             f"got {value!r}")
    if not _is_real(cfg.mixup_switch_prob) or not 0.0 <= cfg.mixup_switch_prob <= 1.0:
        raise ConfigError(f"--mixup_switch_prob must be in [0, 1], got {cfg.mixup_switch_prob!r}")
    if not _is_real(cfg.drop_path_rate) or not 0.0 <= cfg.drop_path_rate < 1.0:
        raise ConfigError(f"--drop_path_rate must be in [0, 1) (0 turns stochastic depth off; e.g. 0.05), "
                         f"got {cfg.drop_path_rate!r}")


def _check_eval_size(cfg: TrainConfig) -> None:
    """--eval_image_size a positive integer; --eval_crop_fraction in (0, 1] and only with encoded images."""
    size = cfg.eval_image_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError(f"--eval_image_size must be a positive integer (e.g. 256), got {size!r}")
    fraction = cfg.eval_crop_fraction
    if fraction is not None:
        if not _is_real(fraction) or not 0.0 < fraction <= 1.0:
            raise ConfigError(f"--eval_crop_fraction must be in (0, 1] (e.g. 0.875 or 0.95), got {fraction!r}")
        if cfg.dataset == "digits":
            raise ConfigError("--eval_crop_fraction is used by --dataset=imagenet2012|tfrecord|folder, not "
                              "--dataset=digits (whose eval resizes the whole image); drop it")


def eval_size(cfg: Any) -> int:
    """The eval resolution of a resolved config: --eval_image_size, else --image_size."""
    return getattr(cfg, "eval_image_size", None) or cfg.image_size


def model_input_size(cfg: Any) -> int | None:
    """The training model's input side: --image_size, or None (any size) when the eval size differs."""
    return cfg.image_size if eval_size(cfg) == cfg.image_size else None


def _check_augment(cfg: TrainConfig) -> None:
    """--augment is a policy; its knobs are given only with a policy that has them, in their ranges."""
    _choice("augment", cfg.augment, AUGMENTS)
    users = {"augment_magnitude": ("randaugment", "augmix"), "augment_num_ops": ("randaugment",),
             "augment_magnitude_std": ("randaugment",)}
    for name, policies in users.items():
        if getattr(cfg, name) is not None and cfg.augment not in policies:
            raise ConfigError(f"--{name} is used by --augment={'|'.join(policies)} only, not "
                             f"--augment={cfg.augment}; drop it")
    m = cfg.augment_magnitude
    if m is not None and (not _is_real(m) or not 0.0 <= m <= 10.0):
        raise ConfigError(f"--augment_magnitude must be in [0, 10] (timm's scale; e.g. 9), got {m!r}")
    n = cfg.augment_num_ops
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10):
        raise ConfigError(f"--augment_num_ops must be an integer in [1, 10] (e.g. 2), got {n!r}")
    std = cfg.augment_magnitude_std
    if std is not None and (not _is_real(std) or not 0.0 <= std < float("inf")):
        raise ConfigError(f"--augment_magnitude_std must be a finite number >= 0 (e.g. 0.5), got {std!r}")
    p = cfg.random_erasing
    if not _is_real(p) or not 0.0 <= p <= 1.0:
        raise ConfigError(f"--random_erasing must be in [0, 1] (0 turns it off; e.g. 0.25), got {p!r}")


def _check_optimizer(cfg: TrainConfig) -> None:
    """--optimizer is sgd or adamw; Adam's betas in [0, 1) and only given with adamw."""
    _choice("optimizer", cfg.optimizer, OPTIMIZERS)
    for name in ("adam_beta1", "adam_beta2"):
        value = getattr(cfg, name)
        if not _is_real(value) or not 0.0 <= value < 1.0:
            raise ConfigError(f"--{name} must be in [0, 1) (e.g. 0.9 or 0.999), got {value!r}")
    if cfg.optimizer != "adamw" and (cfg.adam_beta1, cfg.adam_beta2) != (0.9, 0.999):
        raise ConfigError(f"--adam_beta1/--adam_beta2 are used by --optimizer=adamw only, not "
                         f"--optimizer={cfg.optimizer}; add --optimizer=adamw or drop them")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _is_finite(value: Any) -> bool:
    """A real number that is neither NaN nor +-inf."""
    return _is_real(value) and math.isfinite(value)


def _choice(flag: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"--{flag}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _positive_int_or_none(flag: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--{flag} must be a positive integer, got {value!r}")
