"""Exponential moving average of a model's weights, kept per device under any tf.distribute strategy.

After every optimizer step (and after the replicas' BN statistics are averaged) each shadow
variable becomes `decay * shadow + (1 - decay) * weight`, for the trainable weights and the BN
moving mean/variance alike (as timm's ModelEmaV2 and Model Garden's EMA average all model
weights), so the averaged model has statistics on the same time scale as its weights. Shadows are
created under the strategy's scope (mirrored like the weights) and updated device by device with
`strategy.extended.update`, so every replica and worker holds the same average without any
communication. The shadows live in `WeightEMA.state` (a `tf.Module` holding only them), which is
checkpointed next to the model so a resumed run continues the same average.
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from keras_regnet.errors import ConfigError


def averaged_weights(model: Any) -> list[Any]:
    """The model's floating-point weights (trainable + BN moving statistics) as TF variables.

    Weights of frozen layers (`trainable=False`, --freeze) are left out: they never change, and
    averaging them would only add rounding to weights that must stay bit-identical.
    """
    frozen = {id(w) for layer in model.layers if not layer.trainable for w in layer.weights}
    out = []
    for w in model.weights:
        if id(w) in frozen:
            continue
        v = getattr(w, "value", w)  # keras.Variable -> its tf.Variable (mirrored under a strategy)
        if v.dtype.is_floating:
            out.append(v)
    return out


class WeightEMA:
    """Shadow copies of `weights` and their per-step EMA update; build under strategy.scope()."""

    def __init__(self, weights: Sequence[Any], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"--ema_decay must be in (0, 1) to keep an average, got {decay}")
        self.decay = float(decay)
        self._weights = list(weights)
        # Start at the current weights (identical on every replica); mirrored under a strategy scope.
        self.shadows = [tf.Variable(w, trainable=False, name=f"ema_{i}")
                        for i, w in enumerate(self._weights)]
        self.state = tf.Module(name="weight_ema")  # what checkpoints track (not the weights again)
        self.state.shadows = self.shadows

    def update(self, strategy: tf.distribute.Strategy) -> None:
        """shadow <- decay * shadow + (1 - decay) * weight on every device (cross-replica context)."""
        decay = self.decay

        def step(shadow: tf.Variable, weight: tf.Tensor) -> Any:
            value = tf.cast(weight, shadow.dtype)
            return shadow.assign(decay * shadow + (1.0 - decay) * value)

        for shadow, weight in zip(self.shadows, self._weights):
            strategy.extended.update(shadow, step, args=(weight,), group=False)

    def swap(self, strategy: tf.distribute.Strategy) -> None:
        """Exchange the model's weights and the shadows on every device (call twice to undo)."""

        def exchange(shadow: tf.Variable, weight: tf.Variable) -> Any:
            held = tf.identity(weight)
            weight.assign(shadow)
            return shadow.assign(held)

        for shadow, weight in zip(self.shadows, self._weights):
            strategy.extended.update(shadow, exchange, args=(weight,), group=False)
