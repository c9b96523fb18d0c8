"""The JAX engine's update: forward, backward, coupled L2, Nesterov SGD, BN statistics and EMA in one
jitted function over a donated state.

Imports Keras and JAX only (no TensorFlow), so the step can be built and timed on a machine that has
no TensorFlow (benchmarks/gpu_step.py). The recipe's maths is the TensorFlow engine's: the objective
(training.core.objective), the coupled L2 and the optimizer with its warm-up + cosine schedule
(training.core.recipe) are the same functions; here they run on the model's `stateless_call`.
Gradients are those of the mean loss over the *global* batch (the arrays span every device), so the
decay is added once per step whatever the device count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import keras

from training.core.objective import StepMetrics, batch_metrics
from training.core.recipe import coupled_l2, decay_mask


class TrainState(NamedTuple):
    """Everything a step changes: weights, BN statistics, optimizer slots, EMA shadows (a JAX pytree)."""

    trainable: list[Any]
    non_trainable: list[Any]
    optimizer: list[Any]
    ema: list[Any]  # shadows of the trainable weights, then of the non-trainable ones in `EmaSlots`; [] if off


class EmaSlots(NamedTuple):
    """Which weights the EMA averages: every trainable one, and these non-trainable indices (BN statistics
    of trainable layers; frozen layers' weights never change and are left out, as the TF engine does)."""

    non_trainable: tuple[int, ...]


def ema_slots(model: keras.Model) -> EmaSlots:
    """The floating-point non-trainable weights of trainable layers (BN moving mean/variance)."""
    frozen = {id(w) for layer in model.layers if not layer.trainable for w in layer.weights}
    picked = [i for i, v in enumerate(model.non_trainable_variables)
              if id(v) not in frozen and "float" in str(v.dtype)]
    return EmaSlots(tuple(picked))


def initial_state(model: keras.Model, optimizer: keras.optimizers.Optimizer, ema: EmaSlots | None) -> TrainState:
    """The state of a built model and optimizer (EMA shadows start at the weights)."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    shadows = [] if ema is None else [*trainable, *(non_trainable[i] for i in ema.non_trainable)]
    return TrainState(trainable, non_trainable, [v.value for v in optimizer.variables], list(shadows))


def ema_weights(state: TrainState, slots: EmaSlots) -> tuple[list[Any], list[Any]]:
    """(trainable, non_trainable) with the EMA shadows in place of the weights they average."""
    n = len(state.trainable)
    non_trainable = list(state.non_trainable)
    for j, i in enumerate(slots.non_trainable):
        non_trainable[i] = state.ema[n + j]
    return list(state.ema[:n]), non_trainable


def swap_ema(state: TrainState, slots: EmaSlots) -> TrainState:
    """The state with weights and EMA shadows exchanged (twice: the original), as the TF engine's swap."""
    trainable, non_trainable = ema_weights(state, slots)
    shadows = [*state.trainable, *(state.non_trainable[i] for i in slots.non_trainable)]
    return TrainState(trainable, non_trainable, state.optimizer, shadows)


def _ema_update(shadows: Sequence[Any], values: Sequence[Any], decay: float) -> list[Any]:
    """shadow <- decay * shadow + (1 - decay) * value, in each shadow's dtype."""
    return [decay * s + (1.0 - decay) * v.astype(s.dtype) for s, v in zip(shadows, values)]


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, *, global_batch: int,
                    num_classes: int, weight_decay: float, label_smoothing: float, ema_decay: float = 0.0,
                    ema: EmaSlots | None = None, decay_norm_and_bias: bool = True, accum_steps: int = 1,
                    accum_groups: int = 1) -> Callable[[TrainState, Any, Any], tuple[TrainState, StepMetrics]]:
    """(state, images, labels) -> (next state, StepMetrics summed over the global batch); not yet jitted.

    The loss is the mean over the global batch, its gradient gets `weight_decay * w` added once, and
    the optimizer (Nesterov SGD, LR from its schedule at its iteration count) applies it; the BN
    moving statistics come out of the forward pass, then the EMA follows the new weights.
    `decay_norm_and_bias=False` decays kernels only (training.core.recipe.decay_mask). `accum_steps=k`
    runs k micro-batches in turn (lax.scan: activations of one in memory) and sums their gradients into
    one update; micro-batch j is the j-th k-th of each of the `accum_groups` (devices') shares of the
    batch, as the TensorFlow engine splits each replica's batch.
    """
    mask = None if decay_norm_and_bias else decay_mask(model.trainable_variables, False)

    def loss_fn(trainable: list[Any], non_trainable: list[Any], images: Any, labels: Any) -> Any:
        logits, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        metrics = batch_metrics(logits, labels, num_classes, label_smoothing)
        return metrics.loss_sum / global_batch, (metrics, non_trainable)

    value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)

    def micro_batches(x: Any) -> Any:
        """[B, ...] -> [k, B / k, ...]: micro-batch j holds the j-th k-th of every group's share."""
        x = x.reshape((accum_groups, accum_steps, -1, *x.shape[1:]))
        return jnp.swapaxes(x, 0, 1).reshape((accum_steps, -1, *x.shape[3:]))

    def accumulated(trainable: list[Any], non_trainable: list[Any], images: Any, labels: Any) -> tuple[Any, ...]:
        def body(carry: tuple[Any, ...], batch: tuple[Any, Any]) -> tuple[tuple[Any, ...], None]:
            grads, non_trainable, metrics = carry
            (_, (m, non_trainable)), g = value_and_grad(trainable, non_trainable, *batch)
            return ([a + b for a, b in zip(grads, g)], non_trainable,
                    StepMetrics(*(a + b for a, b in zip(metrics, m)))), None

        zeros = [jnp.zeros_like(w) for w in trainable]
        metrics = StepMetrics(*(jnp.zeros((), jnp.float32) for _ in StepMetrics._fields))
        (grads, non_trainable, metrics), _ = jax.lax.scan(
            body, (zeros, non_trainable, metrics), (micro_batches(images), micro_batches(labels)))
        return (None, (metrics, non_trainable)), grads

    def step(state: TrainState, images: Any, labels: Any) -> tuple[TrainState, StepMetrics]:
        grad_fn = value_and_grad if accum_steps == 1 else accumulated
        (_, (metrics, non_trainable)), grads = grad_fn(state.trainable, state.non_trainable, images, labels)
        grads = coupled_l2(grads, state.trainable, weight_decay, mask)
        trainable, opt_vars = optimizer.stateless_apply(state.optimizer, grads, state.trainable)
        shadows = state.ema
        if ema is not None and ema_decay:
            values = [*trainable, *(non_trainable[i] for i in ema.non_trainable)]
            shadows = _ema_update(state.ema, values, ema_decay)
        return TrainState(list(trainable), list(non_trainable), list(opt_vars), shadows), metrics

    return step


def all_finite(state: TrainState) -> Any:
    """One on-device flag: every floating-point value of the state (weights, BN statistics, slots, EMA) is finite.

    x * 0 is 0 for a finite x and NaN for inf or NaN, so the sum of all of them is finite exactly when every
    value is (it cannot overflow); XLA fuses it into one cheap pass per array (an isfinite/all per array
    cost ~10% of a CPU step, this ~0 in benchmarks/gpu_step.py --loop).
    """
    sums = [jnp.sum(x * jnp.zeros((), x.dtype), dtype=jnp.float32) for x in jax.tree_util.tree_leaves(state)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.isfinite(sum(sums)) if sums else jnp.array(True)


def with_outputs(train: Callable[[TrainState, Any, Any], tuple[TrainState, StepMetrics]]
                 ) -> Callable[[TrainState, Any, Any], tuple[TrainState, Any]]:
    """The step returning, beside the state, one float32 vector: its StepMetrics, then the new state's
    finite flag (training.core.metrics.OUTPUT_FIELDS), so the loop reads a step with one small transfer."""

    def step(state: TrainState, images: Any, labels: Any) -> tuple[TrainState, Any]:
        state, metrics = train(state, images, labels)
        values = [jnp.asarray(m, jnp.float32) for m in metrics] + [all_finite(state).astype(jnp.float32)]
        return state, jnp.stack(values)

    return step


def make_eval_step(model: keras.Model, num_classes: int) -> Callable[[list[Any], list[Any], Any, Any], StepMetrics]:
    """(trainable, non_trainable, images, labels) -> StepMetrics in inference mode (no smoothing)."""

    def step(trainable: list[Any], non_trainable: list[Any], images: Any, labels: Any) -> StepMetrics:
        logits, _ = model.stateless_call(trainable, non_trainable, images, training=False)
        return batch_metrics(logits, labels, num_classes, 0.0)

    return step


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's trainable BatchNormalization layers (ghost BN included), in graph order."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def bn_moments(x: Any, layer: keras.layers.BatchNormalization) -> tuple[Any, Any]:
    """Per-channel (mean, variance) of a BN layer's input as it normalizes it in training: over each
    ghost group (a device's share of the batch, or --bn_batch images) and then averaged."""
    x = x.astype(jnp.float32)
    axes = tuple(a % x.ndim for a in layer._reduction_axes)
    group = getattr(layer, "ghost_batch_size", None)
    if group is None:
        return jnp.mean(x, axis=axes), jnp.var(x, axis=axes)
    groups = x.reshape((-1, group, *x.shape[1:]))
    shifted = tuple(a + 1 for a in axes)
    return jnp.mean(jnp.mean(groups, axis=shifted), axis=0), jnp.mean(jnp.var(groups, axis=shifted), axis=0)


class StatisticsSlots(NamedTuple):
    """Where the probe's variables and each BN layer's moving mean/variance sit in the model's lists."""

    probe_trainable: tuple[int, ...]
    probe_non_trainable: tuple[int, ...]
    moving: tuple[tuple[int, int], ...]  # (moving_mean index, moving_variance index) per BN layer


def make_statistics_step(model: keras.Model) -> tuple[Callable[..., list[Any]], StatisticsSlots]:
    """Precise BN: (trainable, non_trainable, images) -> [mean_1, var_1, ...] of every BN layer's input.

    A functional view of the model outputs each BN layer's input in training mode (pycls
    `compute_precise_bn_stats`); the moments are taken per ghost group and averaged, so per-device
    BN gives the average of the devices' moments, as the TF engine's replica average.
    """
    layers = batch_norm_layers(model)
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    t_index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    n_index = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    slots = StatisticsSlots(tuple(t_index[id(v)] for v in probe.trainable_variables),
                            tuple(n_index[id(v)] for v in probe.non_trainable_variables),
                            tuple((n_index[id(layer.moving_mean)], n_index[id(layer.moving_variance)])
                                  for layer in layers))

    def step(trainable: list[Any], non_trainable: list[Any], images: Any) -> list[Any]:
        features, _ = probe.stateless_call([trainable[i] for i in slots.probe_trainable],
                                           [non_trainable[i] for i in slots.probe_non_trainable],
                                           images, training=True)
        if len(layers) == 1:
            features = [features]
        return [m for x, layer in zip(features, layers) for m in bn_moments(x, layer)]

    return step, slots


def with_statistics(non_trainable: Sequence[Any], slots: StatisticsSlots, averages: Sequence[Any]) -> list[Any]:
    """`non_trainable` with each BN layer's moving mean/variance replaced by the averaged moments."""
    out = list(non_trainable)
    for k, (mean_i, var_i) in enumerate(slots.moving):
        out[mean_i] = jnp.asarray(averages[2 * k], out[mean_i].dtype)
        out[var_i] = jnp.asarray(averages[2 * k + 1], out[var_i].dtype)
    return out
