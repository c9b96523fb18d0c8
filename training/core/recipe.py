"""The paper's training recipe: LR rule, warmup + half-period cosine, Nesterov SGD, coupled L2.

pycls semantics: LR = 0.1 x batch / 128; linear warmup from 0.1 x LR over 5 epochs; cosine decay
to 0 over the run; weight decay 5e-5 added to the gradient (L2 in the loss), not Keras' decoupled
`weight_decay`. The schedule is evaluated per step (fractional epoch) so it continues exactly
where it stopped after a resume.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import keras

from keras_regnet.errors import ConfigError

REFERENCE_BATCH = 128
REFERENCE_LR_PER_128 = 0.1


def recipe_lr(batch_size: int) -> float:
    """The paper's base LR for a global batch size: 0.1 x batch / 128."""
    return REFERENCE_LR_PER_128 * batch_size / REFERENCE_BATCH


def lr_at(epoch: float, base_lr: float, total_epochs: float, warmup_epochs: float,
          warmup_factor: float = 0.1) -> float:
    """Pure-Python LR at a (fractional) epoch: half-period cosine times the linear warmup factor."""
    lr = 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / total_epochs))
    if epoch < warmup_epochs:
        alpha = epoch / warmup_epochs
        lr *= warmup_factor * (1.0 - alpha) + alpha
    return lr


def warmup_cosine(step: Any, schedule: "WarmupCosine", cos: Callable[[Any], Any],
                  minimum: Callable[[Any, Any], Any]) -> Any:
    """The warmup-cosine formula, once for both callers: the device schedule (keras.ops) and the host's LR (math).

    lr(s) = base_lr * 0.5 * (1 + cos(pi * s / total)) * (f * (1 - a) + a), a = min(s / warmup, 1) (pycls
    `lr_fun_cos` times `get_epoch_lr`'s linear warm-up from factor f).
    """
    cosine = 0.5 * schedule.base_lr * (1.0 + cos(math.pi * step / schedule.total_steps))
    if schedule.warmup_steps <= 0:
        return cosine
    alpha = minimum(step / schedule.warmup_steps, 1.0)
    return cosine * (schedule.warmup_factor * (1.0 - alpha) + alpha)


@keras.saving.register_keras_serializable(package="keras_regnet_training")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Per-step LR: cosine over `total_steps` times a linear warmup from `warmup_factor`."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int,
                 warmup_factor: float = 0.1) -> None:
        if total_steps < 1:
            raise ConfigError(f"total_steps must be >= 1, got {total_steps}")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, step: Any) -> Any:
        """The LR at `step` (a tensor on any backend; keras.ops, so both engines share it)."""
        return warmup_cosine(keras.ops.cast(step, "float32"), self, keras.ops.cos, keras.ops.minimum)

    def at(self, step: int) -> float:
        """The LR at `step` as a Python float, computed on the host (no device op, no sync): what the loop logs."""
        return float(warmup_cosine(float(step), self, math.cos, min))

    def get_config(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "warmup_factor": self.warmup_factor}


def make_optimizer(schedule: Any, momentum: float = 0.9, nesterov: bool = True,
                   step: Any = None) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum and no decoupled decay (L2 is added to the gradients instead).

    With `step` (the loop's global step variable) the schedule is read at that step rather than at
    the optimizer's own iteration count, which a float16 step skipped for overflow does not
    advance: the LR then stays on the run's step axis (a skipped step uses up its LR, as a
    per-iteration scheduler beside torch's GradScaler does) and the logged LR is the applied one.
    (float16 loss scaling wraps it in the TensorFlow engine: training.engines.tensorflow.loss_scale.)
    """
    learning_rate = schedule if step is None else (lambda: schedule(step))
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)


def coupled_l2(grads: Sequence[Any], variables: Sequence[Any], weight_decay: float) -> list[Any]:
    """g + wd * w for every trainable variable: the gradient of loss + wd/2 * ||w||^2 (pycls/torch SGD)."""
    if weight_decay == 0:
        return list(grads)
    out = []
    for g, v in zip(grads, variables):
        if g is None:
            out.append(g)
            continue
        out.append(g + weight_decay * keras.ops.cast(v, g.dtype))
    return out
