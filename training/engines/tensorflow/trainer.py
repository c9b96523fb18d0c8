"""The custom training loop over the parts it is handed: resume, train, evaluate, checkpoint, export.

The Trainer builds no model, optimizer, schedule, data or checkpoint (training.engines.tensorflow.assembly does, from the
config); it builds only its compiled steps from them. The checkpoint holds the model, the optimizer
(momentum, iteration count), the global step (the LR schedule's position) and the EMA; epoch and
position in the epoch follow from the step, and the Feed is a pure function of (seed, epoch,
position), so a restarted run continues exactly where the last checkpoint was.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import tensorflow as tf

from keras_regnet import fileio
from training.engines.tensorflow import precise_bn
from training.core import reporting
from training.engines.tensorflow import step as steps
from training.core.classifier_file import save_classifier
from training.core.config import TrainConfig
from training.data.pipeline import data_errors
from training.core.divergence import Diverged
from training.core.metrics import StepMetrics, Totals, accumulate
from training.engines.tensorflow.devices import Runtime
from training.core.parts import Parts

# Per-epoch history, cumulative training time and skipped count, rewritten at every epoch end so
# that a resumed run's metrics.json covers the whole run (model_dir/progress.json).
PROGRESS_FILE = "progress.json"


class NonFiniteLoss(Diverged):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """One run's loop: a resolved TrainConfig, a Runtime (strategy/XLA/precision) and its Parts."""

    def __init__(self, cfg: TrainConfig, runtime: Runtime, parts: Parts) -> None:
        self.cfg, self.runtime, self.strategy = cfg, runtime, runtime.strategy
        self.model, self.optimizer, self.schedule = parts.model, parts.optimizer, parts.schedule
        self.step, self.epoch, self.ema = parts.step, parts.epoch, parts.ema
        self.feed, self.checkpoint, self.bn_images = parts.feed, parts.checkpoint, parts.bn_images
        self.manager = parts.checkpoint.manager
        self._start_bookkeeping()
        self._build_steps()

    def _start_bookkeeping(self) -> None:
        """The run's length from the feed and config, and empty counters (both engines)."""
        self.global_batch = self.feed.global_batch
        self.steps_per_epoch = self.feed.steps_per_epoch
        self.total_steps = self.steps_per_epoch * self.cfg.epochs
        if self.cfg.max_steps:
            self.total_steps = min(self.total_steps, self.cfg.max_steps)
        self.skipped = {"train": 0.0, "eval": 0.0}
        self.step_losses: list[float] = []  # mean train loss of every step run by this process

    def _build_steps(self) -> None:
        """The compiled train/eval/EMA/precise-BN steps over the handed model and optimizer."""
        cfg, classes, xla = self.cfg, self.feed.source.num_classes, self.runtime.xla
        train_fn = steps.make_train_step(self.model, self.optimizer, self.global_batch, classes,
                                         cfg.weight_decay, cfg.label_smoothing, xla)
        ema_update = (lambda: self.ema.update(self.strategy)) if self.ema is not None else None
        self.train_step = steps.distributed(self.strategy, train_fn,
                                            average=self.model.non_trainable_variables, after=ema_update)
        self.eval_step = steps.distributed(self.strategy, steps.make_eval_step(self.model, classes, xla))
        self._swap_ema = tf.function(lambda: self.ema.swap(self.strategy)) if self.ema is not None else None
        self._bn_statistics = (precise_bn.make_statistics_step(self.strategy, self.model)
                               if cfg.precise_bn_images else None)

    # Resume -------------------------------------------------------------------------------
    def restore_or_start(self) -> int:
        """Restore the latest checkpoint (if any, and --resume), check the run matches; return step."""
        self.checkpoint.restore_or_start()
        return self.current_step()

    def current_step(self) -> int:
        """The global step: steps trained so far (the schedule's position, the checkpoint number)."""
        return int(self.step.numpy())

    def run_train_step(self, iterator: Any) -> StepMetrics:
        """Train on the iterator's next global batch; its metrics on the host. Advances the step."""
        with data_errors():
            metrics: StepMetrics = self.train_step(iterator).to_host()
        self.step.assign_add(1)
        return metrics

    # Train / eval -------------------------------------------------------------------------
    def _train_iterator(self, epoch: int, start: int, count: int) -> Any:
        return self.feed.train(epoch, start, count)

    def recompute_bn_statistics(self) -> None:
        """Precise BN: the BN moving statistics from --precise_bn_images training images, now.

        The batches are the first of the current epoch's stream (a pure function of the seed and
        epoch), so a resumed run recomputes the same statistics.
        """
        if self._bn_statistics is None:
            return
        batches = min(max(1, self.cfg.precise_bn_images // self.global_batch), self.steps_per_epoch)
        epoch = max(self.current_step() - 1, 0) // self.steps_per_epoch
        with data_errors():
            precise_bn.recompute(self._bn_statistics, self.model, self._train_iterator(epoch, 0, batches), batches)

    def evaluate(self) -> dict[str, float]:
        """Loss, top-1/top-5 error (%) on the whole eval split (padding masked out)."""
        self.recompute_bn_statistics()
        totals = accumulate(self.eval_step, self.feed.eval(), self.feed.eval_steps)
        self.skipped["eval"] = totals.invalid  # padding has its own label and is not counted
        return totals.summary()

    def evaluate_final_weights(self) -> dict[str, Any]:
        """Eval of the weights that get exported: the EMA (plus the raw weights' as raw_*) if on."""
        if self.ema is None:
            return self.evaluate()
        raw = self.evaluate()
        with self.ema_weights():
            averaged = self.evaluate()
        return {**averaged, **{f"raw_{k}": raw[k] for k in ("loss", "top1_err", "top5_err")}}

    def ema_weights(self) -> Any:
        """Context manager: the model holds the EMA weights inside, its own weights again after."""

        @contextlib.contextmanager
        def swapped() -> Any:
            self._swap_ema()
            try:
                yield
            finally:
                self._swap_ema()

        return swapped() if self.ema is not None else contextlib.nullcontext()

    def save_checkpoint(self) -> None:
        """Save the run at the current global step (the epoch recorded beside it)."""
        self.epoch.assign(int(self.step.numpy()) // self.steps_per_epoch)
        self.checkpoint.save(int(self.step.numpy()))

    def fit(self) -> dict[str, Any]:
        """Train from the restored step to the end, evaluating each epoch; return final metrics."""
        cfg = self.cfg
        start_step = self.restore_or_start()
        scalars = reporting.Scalars(fileio.join(cfg.model_dir, "logs") if self.runtime.is_chief else None)
        history, train_time, images_per_s = self._load_progress(start_step)
        step = start_step
        while step < self.total_steps:
            epoch, start = divmod(step, self.steps_per_epoch)
            count = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch) - start
            t0 = time.perf_counter()
            step, images_per_s = self._train_epoch(epoch, start, count, scalars)
            train_time += time.perf_counter() - t0
            self.save_checkpoint()
            metrics = self.evaluate_final_weights()
            metrics.update(epoch=epoch + 1, step=step, images_per_s=images_per_s)
            history.append(metrics)
            self._save_progress(history, train_time)
            scalars.write("eval", step, {k: metrics[k] for k in ("loss", "top1_err", "top5_err")})
            if self.ema is not None:
                scalars.write("eval_raw", step, {k: metrics[f"raw_{k}"] for k in ("loss", "top1_err", "top5_err")})
            if cfg.verbose and self.runtime.is_chief:
                label = "eval (EMA)" if self.ema is not None else "eval"
                raw = f"  [raw weights: top-1 err {metrics['raw_top1_err']:.2f}%]" if self.ema is not None else ""
                print(f"  {label}: loss {metrics['loss']:.4f}  top-1 err {metrics['top1_err']:.2f}%  "
                      f"top-5 err {metrics['top5_err']:.2f}%{raw}", flush=True)
        # A run that had nothing left to train is re-evaluated (its skipped-eval count too).
        final = history[-1] if step > start_step else self.evaluate_final_weights()
        return {**final, "train_time_s": train_time, "steps": self.current_step(),
                "epochs": self.total_steps / self.steps_per_epoch, "resumed_from_step": start_step,
                "images_per_s": images_per_s, "history": history,
                "skipped_images": dict(self.skipped), "ema_decay": cfg.ema_decay,
                "bn_images": self.bn_images, "precise_bn_images": cfg.precise_bn_images,
                "eval_weights": "ema" if self.ema is not None else "raw"}

    def _progress_path(self) -> str:
        return fileio.join(self.cfg.model_dir, PROGRESS_FILE)

    def _save_progress(self, history: list[dict[str, Any]], train_time: float) -> None:
        """Chief: record the per-epoch history, training time and skipped count so far."""
        if self.runtime.is_chief:
            fileio.write_json_atomic(self._progress_path(), {
                "history": history, "train_time_s": train_time, "skipped_train": self.skipped["train"]})

    def _load_progress(self, start_step: int) -> tuple[list[dict[str, Any]], float, float]:
        """(history, training time, last images/s) of the epochs finished before `start_step`.

        Restores the skipped-train count too. Only epochs ending at or before the restored
        checkpoint are kept (a later entry would belong to steps about to be re-run); the time and
        skipped count are those recorded at the last kept epoch end.
        """
        path = self._progress_path()
        if start_step == 0 or not fileio.exists(path):
            return [], 0.0, 0.0
        saved = fileio.read_json(path)
        history = [h for h in saved.get("history", []) if h.get("step", start_step + 1) <= start_step]
        if len(history) != len(saved.get("history", [])):
            return history, 0.0, 0.0  # cannot split the recorded totals; count from here on
        self.skipped["train"] = float(saved.get("skipped_train", 0.0))
        last_rate = float(history[-1].get("images_per_s", 0.0)) if history else 0.0
        return history, float(saved.get("train_time_s", 0.0)), last_rate

    def _train_epoch(self, epoch: int, start: int, count: int, scalars: reporting.Scalars) -> tuple[int, float]:
        cfg = self.cfg
        iterator = self._train_iterator(epoch, start, count)
        progress = reporting.Progress(epoch, cfg.epochs, self.steps_per_epoch, start,
                                      cfg.verbose if self.runtime.is_chief else 0)
        epoch_totals = Totals()  # the bar shows this epoch's running means, not the last batch
        for i in range(start, start + count):
            metrics = self.run_train_step(iterator)
            step = self.current_step()
            if not math.isfinite(metrics.loss_sum):
                raise NonFiniteLoss(
                    f"training loss became {metrics.loss_sum} at step {step} (epoch {epoch + 1}); stopped, "
                    f"try a lower --lr (was {cfg.lr:g}). "
                    f"Last good checkpoint: {self.checkpoint.latest or 'none'}"
                )
            epoch_totals.add(metrics)
            this_step = Totals.of(metrics)
            self.step_losses.append(this_step.loss)
            self.skipped["train"] += metrics.invalid
            lr = float(self.schedule(step - 1))  # the LR this step applied (read before the increment)
            progress.update(i + 1, self.global_batch, {"loss": epoch_totals.loss,
                                                       "top1": epoch_totals.top1 / epoch_totals.examples, "lr": lr})
            if step % 10 == 0 or i + 1 == start + count:
                scalars.write("train", step, {**this_step.errors(), "lr": lr,
                                              "images_per_s": progress.images_per_second()})
            if step % cfg.checkpoint_every == 0 and i + 1 < start + count:
                self.save_checkpoint()
        return self.current_step(), progress.images_per_second()

    # Export -------------------------------------------------------------------------------
    def export(self) -> str | None:
        """Save the trained model (its EMA weights when --ema_decay > 0) as model_dir/model.keras, a
        classifier with a softmax head (training.core.classifier_file)."""
        if not self.runtime.is_chief:
            return None
        with self.ema_weights():
            return save_classifier(self.model, self.cfg.model_dir)

