"""Dynamic loss scaling for float16 whose skip decision is agreed by every replica.

Keras' `LossScaleOptimizer` checks the gradients for inf/NaN in each replica *before* they are
all-reduced and, under MirroredStrategy, takes replica 0's answer: an overflow on another replica
is then summed into the update of every replica (and under MultiWorkerMirroredStrategy, whose
update runs without a merge call, replicas can take different branches). Here the count of
replicas that saw a non-finite gradient is all-reduced first, so one bad replica makes every
replica skip the step and halve the scale, as a single device holding the whole batch would.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf


class ReplicaAgreedLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """`keras.optimizers.LossScaleOptimizer` whose finite check is all-reduced across replicas."""

    def check_finite(self, grads: Sequence[Any]) -> Any:
        finite = super().check_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return finite
        bad = tf.cast(tf.logical_not(finite), tf.float32)
        return tf.equal(context.all_reduce(tf.distribute.ReduceOp.SUM, bad), 0.0)
