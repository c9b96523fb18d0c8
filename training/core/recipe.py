"""The paper's training recipe: LR rule, warmup + half-period cosine, Nesterov SGD, coupled L2; and the
options beyond it (AdamW with decoupled decay, no decay on BN parameters and biases).

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


OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(schedule: Any, momentum: float = 0.9, nesterov: bool = True,
                   step: Any = None, *, kind: str = "sgd", betas: tuple[float, float] = (0.9, 0.999),
                   weight_decay: float = 0.0, no_decay: Sequence[Any] = ()) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum and no decoupled decay (L2 is added to the gradients instead), or with
    kind="adamw" AdamW with `betas` and decoupled decay `weight_decay` (w -= lr * wd * w, torch's AdamW),
    the `no_decay` variables excluded (call before the optimizer is built).

    With `step` (the loop's global step variable) the schedule is read at that step rather than at
    the optimizer's own iteration count, which a float16 step skipped for overflow does not
    advance: the LR then stays on the run's step axis (a skipped step uses up its LR, as a
    per-iteration scheduler beside torch's GradScaler does) and the logged LR is the applied one.
    (float16 loss scaling wraps it in the TensorFlow engine: training.engines.tensorflow.loss_scale.)
    """
    learning_rate = schedule if step is None else (lambda: schedule(step))
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)
    if kind != "adamw":
        raise ConfigError(f"--optimizer={kind!r} is not allowed; choose one of {', '.join(OPTIMIZERS)}")
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay,
                                       beta_1=betas[0], beta_2=betas[1], epsilon=1e-8)
    if no_decay:
        optimizer.exclude_from_weight_decay(var_list=list(no_decay))
    return optimizer


def optimizer_options(cfg: Any, model: Any) -> dict[str, Any]:
    """make_optimizer's keyword arguments for a run config: --optimizer, Adam's betas, and for AdamW its
    decoupled --weight_decay with the BN parameters and biases excluded under --nodecay_norm_and_bias."""
    no_decay = [] if cfg.decay_norm_and_bias else [v for v in model.trainable_variables if not is_decayed(v)]
    return {"kind": cfg.optimizer, "betas": (cfg.adam_beta1, cfg.adam_beta2),
            "weight_decay": cfg.weight_decay if cfg.optimizer == "adamw" else 0.0, "no_decay": no_decay}


def coupled_decay(optimizer: str, weight_decay: float) -> float:
    """The L2 factor the step adds to the gradients: --weight_decay for SGD (pycls), 0 for AdamW (decoupled)."""
    return weight_decay if optimizer == "sgd" else 0.0


def is_decayed(variable: Any) -> bool:
    """Whether --nodecay_norm_and_bias still decays `variable`: kernels (2-D and more) yes; BN gammas/betas
    and biases (1-D) no. timm's rule (timm/optim/_param_groups.py, param_groups_weight_decay: no decay
    for `param.ndim <= 1` or a name ending in ".bias")."""
    return len(variable.shape) > 1


def decay_mask(variables: Sequence[Any], decay_norm_and_bias: bool = True) -> list[bool]:
    """Per variable: whether the weight decay applies (all of them unless --nodecay_norm_and_bias)."""
    return [decay_norm_and_bias or is_decayed(v) for v in variables]


def coupled_l2(grads: Sequence[Any], variables: Sequence[Any], weight_decay: float,
               mask: Sequence[bool] | None = None) -> list[Any]:
    """g + wd * w for every trainable variable: the gradient of loss + wd/2 * ||w||^2 (pycls/torch SGD);
    with `mask` (decay_mask) only where it is True."""
    if weight_decay == 0:
        return list(grads)
    out = []
    for i, (g, v) in enumerate(zip(grads, variables)):
        if g is None or (mask is not None and not mask[i]):
            out.append(g)
            continue
        out.append(g + weight_decay * keras.ops.cast(v, g.dtype))
    return out
