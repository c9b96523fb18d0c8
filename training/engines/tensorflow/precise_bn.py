"""Precise BN statistics (pycls BN.USE_PRECISE_STATS): BN moving averages recomputed before eval.

The moving averages of BatchNorm lag behind the weights (momentum 0.9 per step); the reference
replaces them before every evaluation with the average of the batch statistics of a fixed number
of training images (8192) under the current weights, in training mode, averaged over GPUs
(pycls/core/net.py `compute_precise_bn_stats`). Here a functional view of the model outputs the
input of every BN layer; each replica returns the per-layer mean and variance over its batch (over
each ghost sub-batch with --bn_batch, averaged), the strategy averages them over replicas, and the
average over batches replaces the moving statistics on every replica.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from keras_regnet.layers import GhostBatchNormalization


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's trainable BatchNormalization layers (ghost BN included), in graph order.

    Frozen BN layers (--freeze) run in inference mode and keep their statistics, as in training.
    """
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def _moments(x: tf.Tensor, layer: keras.layers.BatchNormalization) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-channel (mean, variance) of a BN layer's input as that layer normalizes it in training."""
    x = tf.cast(x, keras.backend.result_type(x.dtype, "float32"))  # float32, or float64 under that policy
    if isinstance(layer, GhostBatchNormalization):
        groups = tf.reshape(x, [-1, layer.ghost_batch_size, *x.shape[1:]])
        mean, variance = tf.nn.moments(groups, axes=[a + 1 for a in layer._reduction_axes])
        return tf.reduce_mean(mean, axis=0), tf.reduce_mean(variance, axis=0)
    return tf.nn.moments(x, axes=layer._reduction_axes)


def make_statistics_step(strategy: tf.distribute.Strategy, model: keras.Model) -> Callable[[Any], list[tf.Tensor]]:
    """tf.function(iterator) -> [mean_1, var_1, mean_2, ...]: one batch's BN statistics, replica-averaged."""
    layers = batch_norm_layers(model)
    probe = keras.Model(model.inputs, [layer.input for layer in layers])

    def replica_fn(images: tf.Tensor, labels: tf.Tensor) -> list[tf.Tensor]:
        features = probe(images, training=True)
        if len(layers) == 1:
            features = [features]
        return [m for x, layer in zip(features, layers) for m in _moments(x, layer)]

    @tf.function
    def step(iterator: Any) -> list[tf.Tensor]:
        images, labels = next(iterator)
        per_replica = strategy.run(replica_fn, args=(images, labels))
        return [strategy.reduce(tf.distribute.ReduceOp.MEAN, s, axis=None) for s in per_replica]

    return step


def assign_precise_statistics(model: keras.Model, batches: list[list[np.ndarray]]) -> None:
    """Set every BN layer's moving mean/variance to the average of the batches' statistics."""
    averages = [np.mean(values, axis=0) for values in zip(*batches)]
    for i, layer in enumerate(batch_norm_layers(model)):
        layer.moving_mean.assign(averages[2 * i])
        layer.moving_variance.assign(averages[2 * i + 1])


def recompute(step: Callable[[Any], list[tf.Tensor]], model: keras.Model, iterator: Any, num_batches: int) -> None:
    """Run `num_batches` statistics steps on `iterator` and install their average in the model."""
    if not batch_norm_layers(model):
        return
    batches = [[t.numpy() for t in step(iterator)] for _ in range(num_batches)]
    assign_precise_statistics(model, batches)
