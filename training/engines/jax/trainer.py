"""The JAX engine's Trainer: the TensorFlow engine's loop (epochs, eval, progress, resume, export) over a
jitted step on a replicated TrainState.

`JaxTrainer` inherits the loop from training.engines.tensorflow.trainer.Trainer and replaces only what touches the state:
the step, checkpoints, the EMA swap, precise BN and the export. `start_jax` builds its parts from a
resolved config (the JAX counterpart of training.engines.tensorflow.assembly.build_parts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jax
import keras
import numpy as np

from training.engines.jax import step as jax_step
from training.core.classifier_file import save_classifier
from training.core.config import TrainConfig
from training.data.pipeline import data_errors
from training.engines.jax.checkpoint import StateCheckpoint
from training.engines.jax.devices import DeviceLayout, replicate, to_host
from training.engines.jax.feed import JaxFeed
from training.engines.tensorflow.trainer import Trainer
from training.core.objective import StepMetrics
from training.core.recipe import WarmupCosine


@dataclass(frozen=True)
class JaxRuntime:
    """What the loop and the run summary read of the JAX engine's setup (Runtime's counterpart)."""

    layout: DeviceLayout
    policy: str
    kind: str = "jax_data_parallel"
    xla: bool = True

    @property
    def is_chief(self) -> bool:
        return self.layout.is_chief

    @property
    def replicas(self) -> int:
        return self.layout.devices


@dataclass
class JaxParts:
    """What a JaxTrainer is handed: the models, optimizer, schedule, feed and checkpoint."""

    model: keras.Model  # what the step runs (ghost BN per device when several devices share BN-free batches)
    export_model: keras.Model  # what is saved as model.keras: as the TensorFlow engine builds it
    optimizer: keras.optimizers.Optimizer
    schedule: WarmupCosine
    feed: JaxFeed
    checkpoint: StateCheckpoint
    ema: jax_step.EmaSlots | None
    bn_images: int


def _host_metrics(metrics: Any) -> StepMetrics:
    return StepMetrics(*(float(x) for x in to_host(tuple(metrics))))


class JaxTrainer(Trainer):
    """One run's loop on JAX: the state lives on the devices, the loop's bookkeeping is Trainer's."""

    def __init__(self, cfg: TrainConfig, runtime: JaxRuntime, parts: JaxParts) -> None:
        self.cfg, self.runtime, self.layout = cfg, runtime, runtime.layout
        self.model, self.export_model = parts.model, parts.export_model
        self.optimizer, self.schedule, self.feed = parts.optimizer, parts.schedule, parts.feed
        self.checkpoint, self.ema, self.bn_images = parts.checkpoint, parts.ema, parts.bn_images
        self._start_bookkeeping()
        self.state = replicate(jax_step.initial_state(self.model, self.optimizer, self.ema), self.layout)
        self._step = 0
        self._build_steps()

    def _build_steps(self) -> None:
        cfg, classes, replicated = self.cfg, self.feed.source.num_classes, self.layout.replicated
        train = jax_step.make_train_step(self.model, self.optimizer, global_batch=self.global_batch,
                                         num_classes=classes, weight_decay=cfg.weight_decay,
                                         label_smoothing=cfg.label_smoothing, ema_decay=cfg.ema_decay, ema=self.ema)
        self._train = jax.jit(train, donate_argnums=0, out_shardings=replicated)
        self._eval = jax.jit(jax_step.make_eval_step(self.model, classes), out_shardings=replicated)
        self._statistics = None
        if cfg.precise_bn_images and jax_step.batch_norm_layers(self.model):
            statistics, self._statistics_slots = jax_step.make_statistics_step(self.model)
            self._statistics = jax.jit(statistics, out_shardings=replicated)

    def eval_step(self, iterator: Iterator[Any]) -> StepMetrics:
        """The eval metrics of the iterator's next batch under the current (or swapped-in EMA) weights."""
        images, labels = next(iterator)
        return _host_metrics(self._eval(self.state.trainable, self.state.non_trainable, images, labels))

    # Step and state -----------------------------------------------------------------------
    def current_step(self) -> int:
        return self._step

    def run_train_step(self, iterator: Iterator[Any]) -> StepMetrics:
        with data_errors():
            images, labels = next(iterator)
        self.state, metrics = self._train(self.state, images, labels)
        self._step += 1
        return _host_metrics(metrics)

    def restore_or_start(self) -> int:
        restored = self.checkpoint.restore_or_start(to_host(self.state))
        if restored is not None:
            state, self._step = restored
            self.state = replicate(state, self.layout)
        return self._step

    def save_checkpoint(self) -> None:
        self.checkpoint.save(self._step, to_host(self.state))

    def _swap_ema(self) -> None:
        self.state = jax_step.swap_ema(self.state, self.ema)

    def recompute_bn_statistics(self) -> None:
        """Precise BN on the state: the BN moving statistics from --precise_bn_images training images."""
        if self._statistics is None:
            return
        batches = min(max(1, self.cfg.precise_bn_images // self.global_batch), self.steps_per_epoch)
        epoch = max(self._step - 1, 0) // self.steps_per_epoch
        iterator = self._train_iterator(epoch, 0, batches)
        moments = []
        with data_errors():
            for _ in range(batches):
                images, _ = next(iterator)
                moments.append(to_host(self._statistics(self.state.trainable, self.state.non_trainable, images)))
        averages = [np.mean(values, axis=0) for values in zip(*moments)]
        non_trainable = jax_step.with_statistics(to_host(self.state.non_trainable), self._statistics_slots, averages)
        self.state = self.state._replace(non_trainable=replicate(non_trainable, self.layout))

    # Export -------------------------------------------------------------------------------
    def export(self) -> str | None:
        """model_dir/model.keras (softmax head) with the final (EMA when on) weights, built as the TF engine builds it."""
        state = to_host(self.state)
        if not self.runtime.is_chief:
            return None
        trainable, non_trainable = (jax_step.ema_weights(state, self.ema) if self.ema is not None
                                    else (state.trainable, state.non_trainable))
        for variable, value in zip(self.model.trainable_variables, trainable):
            variable.assign(value)
        for variable, value in zip(self.model.non_trainable_variables, non_trainable):
            variable.assign(value)
        if self.export_model is not self.model:
            self.export_model.set_weights(self.model.get_weights())
        return save_classifier(self.export_model, self.cfg.model_dir)
