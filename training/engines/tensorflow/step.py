"""The replica-level train and eval steps: forward + backward under XLA, update outside it.

`strategy.run` calls `replica_train_step`; its forward and backward pass is one
`tf.function(jit_compile=xla)`, while the optimizer update (which all-reduces the gradients across
replicas and workers) stays outside the compiled cluster. Compiling the whole step including the
update fails under MirroredStrategy ("Trying to access resource ... located in device CPU:1
from device CPU:0") and multi-worker collectives are not implemented inside XLA on CPU; this split
works for one device, mirrored, multi-worker and TPU alike.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from training.core.objective import StepMetrics, batch_metrics
from training.core.recipe import coupled_l2, decay_mask

_masked_metrics = batch_metrics  # the objective's earlier name here (tests/training/test_mix.py reads it)


def make_train_step(model: keras.Model, optimizer: Any, global_batch: int, num_classes: int,
                    weight_decay: float, label_smoothing: float, xla: bool, *, decay_norm_and_bias: bool = True,
                    accum_steps: int = 1) -> Callable:
    """A replica function (images, labels) -> this replica's StepMetrics, for `strategy.run`.

    `decay_norm_and_bias=False` adds the coupled L2 to kernels only (training.core.recipe.decay_mask).
    `accum_steps=k` splits the replica's batch into k consecutive micro-batches run one after the other
    (a sequential tf.while_loop: activations of one micro-batch in memory), their gradients summed into
    one update: with BN over each micro-batch, the step of ghost BN groups of the micro-batch size.
    """
    variables = model.trainable_variables
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    mask = None if decay_norm_and_bias else decay_mask(variables, False)

    def forward_backward(images: tf.Tensor, labels: tf.Tensor) -> tuple[list[Any], StepMetrics]:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            metrics = batch_metrics(logits, labels, num_classes, label_smoothing)
            loss = metrics.loss_sum / global_batch  # mean over the global batch; replicas' grads are summed
            grads_of = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(grads_of, variables)
        return grads, metrics

    if xla:  # a nested compiled function; sync BN (a cross-replica op) needs xla off
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def accumulated(images: tf.Tensor, labels: tf.Tensor) -> tuple[list[Any], StepMetrics]:
        """forward_backward over `accum_steps` micro-batches in turn, gradients and metrics summed."""
        micro = tf.shape(images)[0] // accum_steps
        split = [tf.reshape(t, tf.concat([[accum_steps, micro], tf.shape(t)[1:]], 0)) for t in (images, labels)]
        grads, metrics = forward_backward(split[0][0], split[1][0])

        def body(i: tf.Tensor, grads: list[Any], metrics: StepMetrics) -> tuple[Any, ...]:
            g, m = forward_backward(split[0][i], split[1][i])
            return i + 1, [a + b for a, b in zip(grads, g)], tf.nest.map_structure(tf.add, metrics, m)

        _, grads, metrics = tf.while_loop(lambda i, *_: i < accum_steps, body, (tf.constant(1), grads, metrics),
                                          parallel_iterations=1)
        return grads, metrics

    def replica_step(images: tf.Tensor, labels: tf.Tensor) -> StepMetrics:
        grads, metrics = (forward_backward if accum_steps == 1 else accumulated)(images, labels)
        scale = optimizer.dynamic_scale if scaled else 1.0
        # apply_gradients sums the replicas' gradients: each replica adds 1/N of the decay, so the
        # update is w -= lr * (mean loss gradient + wd * w) whatever the replica count.
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        grads = coupled_l2(grads, variables, weight_decay * scale / replicas, mask)
        optimizer.apply_gradients(zip(grads, variables))
        return metrics

    return replica_step


def make_eval_step(model: keras.Model, num_classes: int, xla: bool) -> Callable:
    """A replica function (images, labels) -> this replica's StepMetrics (no label smoothing)."""

    def replica_step(images: tf.Tensor, labels: tf.Tensor) -> StepMetrics:
        logits = model(images, training=False)
        return batch_metrics(logits, labels, num_classes, 0.0)

    if not xla:
        return replica_step
    compiled = tf.function(replica_step, jit_compile=True)

    def replica_call(images: tf.Tensor, labels: tf.Tensor) -> StepMetrics:
        # Called from inside the replica context, so each replica's device placement applies;
        # a tf.function handed to strategy.run directly runs every replica on the first device.
        return compiled(images, labels)

    return replica_call


def all_finite(variables: Sequence[Any]) -> tf.Tensor:
    """One flag: every floating-point value of `variables` (Keras or tf variables) is finite.

    As the JAX engine's `all_finite`: the sum of every value times 0 is finite exactly when each value is.
    """
    values = [v.value if isinstance(v, keras.Variable) else v for v in variables]  # tf.Variable.value is a method
    sums = [tf.reduce_sum(tf.cast(v * tf.zeros((), v.dtype), tf.float32)) for v in values if v.dtype.is_floating]
    return tf.math.is_finite(tf.add_n(sums)) if sums else tf.constant(True)


def pack_outputs(metrics: StepMetrics, finite: tf.Tensor) -> tf.Tensor:
    """One float32 vector: the step's StepMetrics then the state's finite flag (training.core.metrics.OUTPUT_FIELDS)."""
    return tf.stack([tf.cast(m, tf.float32) for m in metrics] + [tf.cast(finite, tf.float32)])


def distributed(strategy: tf.distribute.Strategy, replica_fn: Callable,
                average: Sequence[Any] = (), after: Callable[[], Any] | None = None,
                check: Sequence[Any] | None = None) -> Callable:
    """tf.function(iterator) running replica_fn on the next batch; its outputs summed over replicas.

    The result has replica_fn's structure (StepMetrics for the train and eval steps), each leaf a
    sum over every replica and worker.

    Variables in `average` (BN moving statistics) are set to their mean over all replicas after
    each step, so replicas stay identical as with pycls' DDP buffer broadcast; without this each
    replica would keep statistics of its own sub-batches. `after` (the weight EMA update) runs
    next, in cross-replica context, once the weights and statistics are final for the step.

    With `check` (the run's state: weights, BN statistics, optimizer slots, EMA shadows) the step
    returns pack_outputs(summed metrics, all of `check` finite after the update): one vector to read.
    """
    # Floating-point ones only: a DropPath's seed state (uint32) is not an average.
    tf_vars = [getattr(v, "value", v) for v in average
               if "float" in str(v.dtype)] if strategy.num_replicas_in_sync > 1 else []

    @tf.function
    def step(iterator: Any) -> Any:
        images, labels = next(iterator)
        outputs = strategy.run(replica_fn, args=(images, labels))
        if tf_vars:
            means = strategy.extended.batch_reduce_to(
                tf.distribute.ReduceOp.MEAN, [(v, v) for v in tf_vars])
            for v, m in zip(tf_vars, means):
                v.assign(m)
        if after is not None:
            after()
        summed = tf.nest.map_structure(
            lambda o: strategy.reduce(tf.distribute.ReduceOp.SUM, o, axis=None), outputs)
        return summed if check is None else pack_outputs(summed, all_finite(check))

    return step
