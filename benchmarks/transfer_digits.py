"""Transfer on the embedded digits: pretrain on 0-4, fine-tune on 5-9 with a few labels per class,
against training from scratch on the same few labels with the same budget (epochs, batch, steps).

    python benchmarks/transfer_digits.py [--labels_per_class 10] [--epochs 30] [--seeds 0,1,2]

The digits (scikit-learn's 8x8 scans, upscaled to 32x32 RGB PNGs) are written as image folders and
every arm runs `training.api.train(..., dataset="folder")`, the path a user's photos take:
  pretrain   regnetx_digits on all training images of 0-4 (val: held-out 0-4)
  scratch    on labels_per_class images of each of 5-9, the from-scratch recipe's defaults
  finetune   the same, from the pretrain run (--weights=<its model_dir>), the fine-tuning recipe
  finetune_frozen   the same with --freeze=stem,s1
Validation for the three 5-9 arms: every other 5-9 image (about 850). The last lines print the
mean top-1 error per arm over the seeds and the ratio of scratch to fine-tuned error.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_folders(root: str, labels_per_class: int, seed: int) -> tuple[str, str]:
    """(pretrain folder of 0-4 with train/ and val/, fine-tune folder of 5-9 with few train labels)."""
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = tf.image.resize(digits.images[..., None] * (255.0 / 16.0), [32, 32]).numpy()
    images = np.repeat(np.clip(np.round(images), 0, 255).astype("uint8"), 3, axis=-1)
    rng = np.random.default_rng(seed)
    pretrain, finetune = os.path.join(root, "digits_0_4"), os.path.join(root, f"digits_5_9_seed{seed}")
    for label in range(10):
        index = rng.permutation(np.flatnonzero(digits.target == label))
        if label < 5:
            split = {"train": index[len(index) // 5:], "val": index[: len(index) // 5]}
            base = pretrain
        else:
            split = {"train": index[:labels_per_class], "val": index[labels_per_class:]}
            base = finetune
        for part, chosen in split.items():
            folder = os.path.join(base, part, f"digit_{label}")
            os.makedirs(folder, exist_ok=True)
            for i in chosen:
                with open(os.path.join(folder, f"{i:04d}.png"), "wb") as f:
                    f.write(tf.io.encode_png(images[i]).numpy())
    return pretrain, finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnetx_digits")
    parser.add_argument("--labels_per_class", type=int, default=10)
    parser.add_argument("--pretrain_epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every 5-9 arm")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--finetune_lr", type=float, default=None,
                        help="LR of the fine-tuning arms (default: the fine-tuning recipe's)")
    args = parser.parse_args()
    from training.api import train

    seeds = [int(s) for s in args.seeds.split(",")]
    errors: dict[str, list[float]] = {"scratch": [], "finetune": [], "finetune_frozen": []}
    with tempfile.TemporaryDirectory() as root:
        pretrain_dir, _ = write_folders(root, args.labels_per_class, seeds[0])
        source = os.path.join(root, "pretrain_run")
        pre = train(args.model, dataset="folder", data_dir=pretrain_dir, epochs=args.pretrain_epochs,
                    batch_size=64, image_size=32, model_dir=source, seed=0)
        print(f"pretrain on 0-4: top-1 error {pre['top1_err']:.2f}% ({pre['steps']} steps)", flush=True)
        for seed in seeds:
            _, data = write_folders(os.path.join(root, f"s{seed}"), args.labels_per_class, seed)
            common = dict(dataset="folder", data_dir=data, epochs=args.epochs, batch_size=args.batch_size,
                          image_size=32, seed=seed)
            tuned = dict(weights=source, lr=args.finetune_lr)
            arms = {"scratch": dict(lr=None), "finetune": tuned, "finetune_frozen": dict(tuned, freeze="stem,s1")}
            for arm, extra in arms.items():
                # lr/warmup None: each arm gets its recipe's default (from scratch vs fine-tuning).
                result = train(args.model, warmup_epochs=None, **common, **extra)
                errors[arm].append(result["top1_err"])
                print(f"seed {seed} {arm:16s} top-1 error {result['top1_err']:6.2f}%  lr {result['lr']:.5f}  "
                      f"steps {result['steps']}", flush=True)
    print(f"\n{args.labels_per_class} labels per class of digits 5-9, {args.epochs} epochs, batch "
          f"{args.batch_size}, seeds {args.seeds}; mean top-1 error on the held-out 5-9 images:")
    for arm, values in errors.items():
        spread = f" (min {min(values):.2f}, max {max(values):.2f})" if len(values) > 1 else ""
        print(f"  {arm:16s} {statistics.mean(values):6.2f}%{spread}")
    ratio = statistics.mean(errors["scratch"]) / max(statistics.mean(errors["finetune"]), 1e-9)
    print(f"scratch / fine-tuned error ratio: {ratio:.2f}x")


if __name__ == "__main__":
    main()
