"""absl flags of `python -m training.main` (see --helpfull) and their conversion to a TrainConfig."""

from __future__ import annotations

import dataclasses

from absl import flags

from training import config as C

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Define every training flag once (safe to call twice)."""
    if "dataset" in FLAGS:
        return
    flags.DEFINE_string("model", C.DEFAULT_MODEL, "Zoo name (e.g. regnety_600mf or RegNetY-600MF), a "
                        "built-in small model (regnety_digits, regnetx_digits) or a NetSpec JSON file.")
    flags.DEFINE_enum("dataset", "digits", list(C.DATASETS), "digits: scikit-learn's handwritten digits "
                      "(embedded, no download); imagenet2012: TFDS; tfrecord: ImageNet TFRecord shards; "
                      "folder: one sub-folder per class.")
    flags.DEFINE_string("data_dir", None, "Dataset directory (TFDS data_dir, TFRecord shards or image folder).")
    flags.DEFINE_integer("epochs", None, "Training epochs (default: 20 for digits, 30 for folder, 100 for ImageNet).")
    flags.DEFINE_integer("batch_size", None, "Global batch size over all replicas (default: 64 for "
                         "digits/folder; the zoo recipe's batch for ImageNet, e.g. 1024 for RegNetY-600MF).")
    flags.DEFINE_float("lr", None, "Base learning rate (default: the recipe's 0.1 x batch_size / 128).")
    flags.DEFINE_integer("image_size", None, "Training/eval resolution (default: 32 for digits, 224 otherwise).")
    flags.DEFINE_float("warmup_epochs", None, "Linear LR warmup length in epochs (default: the "
                      "recipe's 5, or half the run when --epochs < 10).")
    flags.DEFINE_float("warmup_factor", 0.1, "Warmup starts at this fraction of the base LR.")
    flags.DEFINE_float("weight_decay", 5e-5, "Coupled L2 weight decay (added to the gradients, as pycls).")
    flags.DEFINE_float("momentum", 0.9, "Nesterov momentum of SGD.")
    flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing (the paper uses none).")
    flags.DEFINE_float("ema_decay", 0.0, "Keep an exponential moving average of the weights (and BN "
                       "statistics) with this decay per step, e.g. 0.9999; evaluate and export it. "
                       "0: off. The average spans about 1 / (1 - decay) steps: keep that well below the "
                       "run's total steps.")
    flags.DEFINE_float("mixup_alpha", 0.0, "Mixup: blend image i of each training batch with image "
                       "B-1-i, weight ~ Beta(alpha, alpha), soft labels (e.g. 0.2). 0: off.")
    flags.DEFINE_float("cutmix_alpha", 0.0, "CutMix: paste a box of image B-1-i into image i of each "
                       "training batch, pasted area ~ 1 - Beta(alpha, alpha), labels weighted by area "
                       "(e.g. 1.0). 0: off.")
    flags.DEFINE_float("mixup_switch_prob", 0.5, "With both --mixup_alpha and --cutmix_alpha > 0: the "
                       "probability that a batch uses CutMix instead of mixup.")
    flags.DEFINE_bool("zero_init_final_gamma", False, "Zero-init the last BN gamma of every residual block.")
    flags.DEFINE_bool("sync_bn", False, "Synchronise BatchNorm statistics across replicas.")
    flags.DEFINE_enum("strategy", "auto", list(C.STRATEGIES), "tf.distribute strategy; auto: tpu if "
                      "--tpu, multi-worker if TF_CONFIG lists several tasks, mirrored on >1 GPU, else one device.")
    flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")
    flags.DEFINE_enum("xla", "auto", list(C.XLA_CHOICES), "XLA-compile the forward/backward pass; auto: "
                      "on for GPU/TPU, off for CPU.")
    flags.DEFINE_enum("mixed_precision", "auto", list(C.PRECISIONS), "auto: bfloat16 on TPU and on GPUs "
                      "with compute capability >= 8.0, float16 (dynamic loss scaling, skips agreed by "
                      "all replicas) on 7.x GPUs, float32 otherwise. off: float32 throughout, as the "
                      "paper trained.")
    flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, metrics.json and model.keras "
                        "(default: runs/<model>-<dataset>).")
    flags.DEFINE_bool("resume", True, "Resume from the latest checkpoint in --model_dir (--noresume: "
                      "refuse to reuse a directory with checkpoints).")
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, data order and augmentation.")
    flags.DEFINE_bool("deterministic", False, "Deterministic tf.data element order and TensorFlow ops "
                      "(slower): a killed and resumed run ends with the weights of an uninterrupted one.")
    flags.DEFINE_integer("checkpoint_every", None, "Also checkpoint every N steps (default: 100 for "
                         "digits, 500 folder, 1000 ImageNet); always at each epoch end.")
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept in --model_dir/checkpoints.")
    flags.DEFINE_integer("max_steps", None, "Stop after this many steps in total (short runs, tests).")
    flags.DEFINE_integer("train_examples", None, "Training set size when it cannot be read from the "
                         "data (default: 1281167 for ImageNet TFRecords).")
    flags.DEFINE_integer("eval_examples", None, "Eval set size (default: 50000 for ImageNet TFRecords).")
    flags.DEFINE_integer("label_offset", None, "Subtracted from TFRecord labels (default 1: 1..1000 -> 0..999).")
    flags.DEFINE_integer("verbose", 1, "0: quiet, 1: progress bar, 2: one line per epoch.")
    flags.DEFINE_enum("crop", "pycls", list(C.CROPS), "Random-resized-crop sampler of the train "
                      "augmentation: pycls (the reference's: area uniform in 8-100%, aspect 3/4-4/3, up "
                      "to 10 tries, else a centre crop) or tf_inception (tf.image's sampled distorted "
                      "bounding box: smaller crops on average).")
    flags.DEFINE_integer("bn_batch", None, "Images per BatchNorm normalization (ghost batch norm over "
                         "sub-batches of this size on each replica; must divide the per-replica batch). "
                         "The paper normalizes over 128 images per GPU: --bn_batch=128 reproduces that "
                         "on one GPU or a TPU core with another batch. Default: the per-replica batch "
                         "(the global batch with --sync_bn).")
    flags.DEFINE_integer("precise_bn_images", None, "Before each eval, replace the BN moving averages "
                         "by the average batch statistics of this many training images under the current "
                         "weights (pycls's precise BN). 0: off. Default: 8192 for ImageNet, as the "
                         "reference; 0 for digits and folder.")
    flags.DEFINE_string("weights", None, "Start from pretrained weights (fine-tuning): imagenet, a .keras / "
                        ".weights.h5 / reference checkpoint (.safetensors, .npz, .pth) file, or an earlier "
                        "--model_dir. The classifier is re-initialised when the class count differs. Switches "
                        "the unset --epochs/--lr/--warmup_epochs to the fine-tuning recipe (docs/training.md).")
    flags.DEFINE_string("freeze", "none", "With --weights: none, backbone (all but the classifier) or a "
                        "comma-separated list of stem and stages (e.g. stem,s1,s2). Frozen layers, BatchNorm "
                        "included, run in inference mode.")
    flags.DEFINE_float("val_fraction", None, "--dataset=folder without train/ and val/ sub-folders: hold out "
                       "this fraction of each class (seeded by --seed; the split is written to "
                       "model_dir/split.json). Unset: every 10th file.")


def config_from_flags() -> C.TrainConfig:
    """The TrainConfig described by the parsed flags (validated later by config.resolve)."""
    names = [f.name for f in dataclasses.fields(C.TrainConfig)]
    return C.TrainConfig(**{n: FLAGS[n].value for n in names})
