"""The JAX engine's trainer: the core loop over a jitted, donated update of a replicated TrainState.

`JaxTrainer` implements the engine interface of training.core.loop.Trainer on arrays that live on the
devices: the state (weights, optimizer slots, EMA shadows) is one pytree updated by one jitted step
(training.engines.jax.step), checkpoints are whole-state .npz files (training.engines.jax.checkpoint),
and model.keras is written from the final state. Imports no TensorFlow: the feed it is handed hides
tf.data behind plain iterators of device arrays.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jax
import keras
import numpy as np

from training.core.classifier_file import save_classifier
from training.core.config import TrainConfig, eval_size
from training.core.loop import Trainer
from training.core.metrics import StepMetrics, StepResult
from training.core.parts import Parts
from training.core.recipe import coupled_decay
from training.engines.jax import step
from training.engines.jax.checkpoint import StateCheckpoint
from training.engines.jax.compilation_cache import CompileStats
from training.engines.jax.devices import JaxRuntime, host_copy, replicate, to_host


@dataclass
class JaxParts(Parts):
    """Parts plus the model that model.keras holds (built as the TensorFlow engine builds it)."""

    checkpoint: StateCheckpoint
    ema: step.EmaSlots | None
    export_model: keras.Model  # model is what the step runs (one BN group per device when several)


def _host_metrics(metrics: Any) -> StepMetrics:
    return StepMetrics(*(float(x) for x in to_host(tuple(metrics))))


class JaxTrainer(Trainer):
    """The loop (training.core.loop) on JAX: the state lives on the devices, the bookkeeping is the core's."""

    compiles: CompileStats | None = None  # counted from the run's start (training.engines.jax.start)

    def __init__(self, cfg: TrainConfig, runtime: JaxRuntime, parts: JaxParts) -> None:
        super().__init__(cfg, runtime, parts)
        self.layout, self.export_model = runtime.layout, parts.export_model
        self.state = replicate(step.initial_state(self.model, self.optimizer, self.ema), self.layout)
        self._step = 0
        classes, replicated = self.feed.source.num_classes, self.layout.replicated
        train = step.make_train_step(self.model, self.optimizer, global_batch=self.global_batch,
                                     num_classes=classes, weight_decay=coupled_decay(cfg.optimizer, cfg.weight_decay),
                                     label_smoothing=cfg.label_smoothing, ema_decay=cfg.ema_decay, ema=self.ema,
                                     decay_norm_and_bias=cfg.decay_norm_and_bias, accum_steps=cfg.accum_steps,
                                     accum_groups=self.layout.devices)
        self._train = jax.jit(step.with_outputs(train), donate_argnums=0, out_shardings=replicated)
        self._eval = jax.jit(step.make_eval_step(self.model, classes), out_shardings=replicated)
        self._statistics = None
        if cfg.precise_bn_images and step.batch_norm_layers(self.model):
            statistics, self._statistics_slots = step.make_statistics_step(self.model)
            self._statistics = jax.jit(statistics, out_shardings=replicated)

    @property
    def has_bn_statistics(self) -> bool:
        return self._statistics is not None

    def compilation(self) -> dict[str, Any] | None:
        """The compile seconds and persistent-cache hits/misses of this run (set by start), for metrics.json."""
        return self.compiles.report() if self.compiles is not None else None

    def restore_or_start(self) -> int:
        restored = self.checkpoint.restore_or_start(to_host(self.state))
        if restored is not None:
            state, self._step = restored
            self.state = replicate(state, self.layout)
        return self._step

    def current_step(self) -> int:
        return self._step

    def train_step(self, iterator: Iterator[Any]) -> Any:
        """Dispatch the jitted update (JAX returns before it runs); its output vector stays on the devices."""
        images, labels = next(iterator)
        self.state, outputs = self._train(self.state, images, labels)
        self._step += 1
        return outputs

    def read_step(self, outputs: Any) -> StepResult:
        return StepResult.unpack(to_host(outputs))

    def eval_step(self, iterator: Iterator[Any]) -> StepMetrics:
        images, labels = next(iterator)
        return _host_metrics(self._eval(self.state.trainable, self.state.non_trainable, images, labels))

    def save_checkpoint(self) -> None:
        """Process 0: wait for the previous write, copy the state to the host, write it on a background thread.

        The copy is taken before the next step donates the state's buffers; the loop goes on while the
        thread serialises and writes it (atomically, training.engines.jax.checkpoint). Other processes
        neither copy nor write.
        """
        if not self.checkpoint.is_chief:
            return
        self.writes.join()  # at most one write in flight, and one host copy of the state
        step_, state = self._step, host_copy(self.state)
        self.writes.submit(lambda: self.checkpoint.save(step_, state))

    def swap_ema(self) -> None:
        self.state = step.swap_ema(self.state, self.ema)

    def agrees_across_processes(self) -> bool:
        return jax.process_count() > 1

    def any_process(self, flag: bool) -> bool:
        """A preemption notice on any process stops all of them at the same step (one gather per step)."""
        if not self.agrees_across_processes():
            return flag
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))

    def bn_statistics(self, iterator: Iterator[Any], batches: int) -> None:
        moments = []
        for _ in range(batches):
            images, _ = next(iterator)
            moments.append(to_host(self._statistics(self.state.trainable, self.state.non_trainable, images)))
        averages = [np.mean(values, axis=0) for values in zip(*moments)]
        non_trainable = step.with_statistics(to_host(self.state.non_trainable), self._statistics_slots, averages)
        self.state = self.state._replace(non_trainable=replicate(non_trainable, self.layout))

    def export(self) -> str | None:
        """model_dir/model.keras (softmax head) with the final (EMA when on) weights, built as the TF engine builds it."""
        state = to_host(self.state)
        if not self.runtime.is_chief:
            return None
        trainable, non_trainable = (step.ema_weights(state, self.ema) if self.ema is not None
                                    else (state.trainable, state.non_trainable))
        for variable, value in zip(self.model.trainable_variables, trainable):
            variable.assign(value)
        for variable, value in zip(self.model.non_trainable_variables, non_trainable):
            variable.assign(value)
        if self.export_model is not self.model:
            self.export_model.set_weights(self.model.get_weights())
        return save_classifier(self.export_model, self.cfg.model_dir, input_size=eval_size(self.cfg))
