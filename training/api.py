"""Library entry point: train one model briefly and get its error, e.g. from a design-space sweep.

    from training.api import train
    result = train("regnety_digits", epochs=1)   # or a NetSpec, a spec dict, a JSON path
    result["top1_err"], result["train_time_s"]

The signature is stable (documented in docs/training.md); it runs the same loop as the CLI.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from training.config import TrainConfig


def train(
    spec_or_name: Any,
    *,
    dataset: str = "digits",
    data_dir: str | None = None,
    epochs: int = 1,
    batch_size: int = 64,
    image_size: int = 32,
    lr: float | None = None,
    weight_decay: float = 5e-5,
    warmup_epochs: float | None = None,
    label_smoothing: float = 0.0,
    ema_decay: float = 0.0,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    mixup_switch_prob: float = 0.5,
    model_dir: str | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    verbose: int = 0,
    strategy: str = "one_device",
    xla: str = "auto",
    mixed_precision: str = "auto",
    crop: str = "pycls",
    bn_batch: int | None = None,
    precise_bn_images: int | None = None,
    weights: str | None = None,
    freeze: str = "none",
    val_fraction: float | None = None,
) -> dict[str, Any]:
    """Train `spec_or_name` and return metrics (top1_err/top5_err in %, train_time_s, steps, ...).

    model_dir=None trains in a temporary directory that is removed afterwards (nothing to resume);
    with a model_dir the run resumes from its checkpoints like the CLI. `seed` seeds the
    initialisation (Python/NumPy/TF), the data order and the augmentation. `weights` ("imagenet",
    a weights file or a run directory) fine-tunes from pretrained weights as --weights does
    (classifier re-initialised when the class count differs; `freeze` as --freeze; note that the
    explicit `epochs`, `lr` and `warmup_epochs` arguments win over the fine-tuning recipe).
    """
    temporary = model_dir is None
    directory = tempfile.mkdtemp(prefix="regnet-train-") if temporary else model_dir
    model_name = spec_or_name if isinstance(spec_or_name, str) else "spec"
    cfg = TrainConfig(model=model_name, dataset=dataset, data_dir=data_dir, epochs=epochs,
                      batch_size=batch_size, image_size=image_size, lr=lr, weight_decay=weight_decay,
                      warmup_epochs=warmup_epochs, label_smoothing=label_smoothing,
                      ema_decay=ema_decay, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                      mixup_switch_prob=mixup_switch_prob,
                      model_dir=directory, seed=seed, max_steps=max_steps, verbose=verbose,
                      strategy=strategy, xla=xla, mixed_precision=mixed_precision,
                      crop=crop, bn_batch=bn_batch, precise_bn_images=precise_bn_images,
                      weights=weights, freeze=freeze, val_fraction=val_fraction)
    from training.run import run

    try:
        spec = None if isinstance(spec_or_name, str) else spec_or_name
        result = run(cfg, spec=spec)
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    if temporary:
        result.update(model_dir=None, checkpoint=None, model_path=None)
    return result
