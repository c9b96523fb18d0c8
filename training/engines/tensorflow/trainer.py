"""The TensorFlow engine's trainer: the core loop over tf.distribute steps on Keras variables.

`TensorFlowTrainer` implements the engine interface of training.core.loop.Trainer: it compiles the
train/eval/EMA/precise-BN steps (training.engines.tensorflow.step) over the model and optimizer its
assembly built, and saves the run through a tf.train.Checkpoint holding the model, the optimizer
(momentum, iteration count), the global step (the LR schedule's position), the epoch and the EMA.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from training.core.classifier_file import save_classifier
from training.core.config import TrainConfig, eval_size
from training.core.loop import Trainer
from training.core.metrics import StepMetrics, StepResult
from training.core.parts import Parts
from training.core.recipe import coupled_decay
from training.data.pipeline import data_errors
from training.engines.tensorflow import precise_bn, step
from training.engines.tensorflow.devices import TensorFlowRuntime

if TYPE_CHECKING:
    from training.engines.tensorflow.checkpoint import RunCheckpoint
    from training.engines.tensorflow.ema import WeightEMA
    from training.engines.tensorflow.feed import Feed


@dataclass
class TensorFlowParts(Parts):
    """Parts plus the TensorFlow engine's step and epoch counters (variables the checkpoint holds)."""

    feed: Feed
    checkpoint: RunCheckpoint
    ema: WeightEMA | None
    step: tf.Variable  # the global step: the schedule's position, the checkpoint number
    epoch: tf.Variable  # checkpointed beside the step (informational)


class TensorFlowTrainer(Trainer):
    """The loop (training.core.loop) on tf.distribute: a TensorFlowRuntime and the parts its assembly built."""

    def __init__(self, cfg: TrainConfig, runtime: TensorFlowRuntime, parts: TensorFlowParts) -> None:
        super().__init__(cfg, runtime, parts)
        self._step = int(parts.step.numpy())
        self.strategy = runtime.strategy
        self.step, self.epoch, self.manager = parts.step, parts.epoch, parts.checkpoint.manager
        classes, xla = self.feed.source.num_classes, runtime.xla
        train_fn = step.make_train_step(self.model, self.optimizer, self.global_batch, classes,
                                        coupled_decay(cfg.optimizer, cfg.weight_decay), cfg.label_smoothing, xla,
                                        decay_norm_and_bias=cfg.decay_norm_and_bias, accum_steps=cfg.accum_steps)
        ema_update = (lambda: self.ema.update(self.strategy)) if self.ema is not None else None
        state = [*self.model.variables, *self.optimizer.variables,
                 *(self.ema.shadows if self.ema is not None else [])]
        self.distributed_train_step = step.distributed(self.strategy, train_fn, average=self.model.non_trainable_variables,
                                                       after=ema_update, check=state)
        self.distributed_eval_step = step.distributed(self.strategy, step.make_eval_step(self.model, classes, xla))
        self._swap = tf.function(lambda: self.ema.swap(self.strategy)) if self.ema is not None else None
        self._statistics = precise_bn.make_statistics_step(self.strategy, self.model) if cfg.precise_bn_images else None

    def restore_or_start(self) -> int:
        self.checkpoint.restore_or_start()
        self._step = int(self.step.numpy())
        return self._step

    def current_step(self) -> int:
        """The global step, counted on the host (the variable mirrors it for the schedule and checkpoints)."""
        return self._step

    def train_step(self, iterator: Iterator[Any]) -> Any:
        """Run the distributed update; its output vector (metrics, state finite) is returned unread."""
        with data_errors():
            outputs = self.distributed_train_step(iterator)
        self.step.assign_add(1)
        self._step += 1
        return outputs

    def read_step(self, outputs: Any) -> StepResult:
        with data_errors():
            return StepResult.unpack(outputs.numpy())

    def eval_step(self, iterator: Iterator[Any]) -> StepMetrics:
        with data_errors():
            return self.distributed_eval_step(iterator).to_host()

    def save_checkpoint(self) -> None:
        """Save the run at the current global step (the epoch recorded beside it)."""
        self.epoch.assign(self.current_step() // self.steps_per_epoch)
        self.checkpoint.save(self.current_step())

    def swap_ema(self) -> None:
        self._swap()

    def agrees_across_processes(self) -> bool:
        return self.runtime.kind == "multi_worker_mirrored"

    def any_process(self, flag: bool) -> bool:
        """A preemption notice on any worker stops all of them at the same step (one all-reduce per step)."""
        if not self.agrees_across_processes():
            return flag
        if not hasattr(self, "_any_worker"):
            self._any_worker = tf.function(lambda x: self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, self.strategy.run(lambda: tf.identity(x)), axis=None))
        return bool(self._any_worker(tf.constant(float(flag))).numpy() > 0)

    def bn_statistics(self, iterator: Iterator[Any], batches: int) -> None:
        with data_errors():
            precise_bn.recompute(self._statistics, self.model, iterator, batches)

    def export(self) -> str | None:
        """model_dir/model.keras (its EMA weights when --ema_decay > 0), a classifier with a softmax head."""
        if not self.runtime.is_chief:
            return None
        with self.ema_weights():
            return save_classifier(self.model, self.cfg.model_dir, input_size=eval_size(self.cfg))
