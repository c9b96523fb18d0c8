"""The training loop both engines run: epochs, evaluation cadence, progress, TensorBoard, NaN stop, resume.

Like Keras 3's backend-free `Trainer` (keras/src/trainers/trainer.py) with one subclass per backend,
`Trainer` owns the run's bookkeeping and calls a small engine interface that each engine implements in
its own `trainer.py` (training.engines.tensorflow.trainer, training.engines.jax.trainer):

    restore_or_start() -> step     resume from model_dir (or record config.json) and return the step
    current_step() -> int          steps trained so far: the schedule's position, the checkpoint number
    train_step(iterator)           one update on the iterator's next global batch -> StepMetrics (host)
    eval_step(iterator)            the eval metrics of the next batch -> StepMetrics (host)
    save_checkpoint()              the whole run state at current_step()
    swap_ema()                     exchange the model's weights with their EMA (a second call undoes it)
    bn_statistics(iterator, n)     precise BN: set the BN moving statistics from n training batches
    export() -> path | None        model_dir/model.keras from the final (EMA when on) weights, chief only

The engine is handed its parts (model, optimizer, schedule, feed, checkpoint) by its assembly and
builds none of them. The Feed is a pure function of (seed, epoch, position), so a restarted run
continues exactly where its last checkpoint was. This module imports neither TensorFlow nor JAX.
"""

from __future__ import annotations

import abc
import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

from keras_regnet import fileio
from training.core import reporting
from training.core.config import TrainConfig
from training.core.divergence import NonFiniteLoss
from training.core.metrics import StepMetrics, Totals, accumulate
from training.core.parts import Parts
from training.core.preemption import Notices, Preempted
from training.core.write_guard import guarded_write

# Per-epoch history, cumulative training time and skipped count, rewritten at every epoch end so
# that a resumed run's metrics.json covers the whole run (model_dir/progress.json).
PROGRESS_FILE = "progress.json"


class Trainer(abc.ABC):
    """One run's loop over an engine: a resolved TrainConfig, the engine's runtime and its Parts."""

    preemption: Notices | None = None  # set by training.run while the run catches preemption notices

    def __init__(self, cfg: TrainConfig, runtime: Any, parts: Parts) -> None:
        self.cfg, self.runtime = cfg, runtime
        self.model, self.optimizer, self.schedule = parts.model, parts.optimizer, parts.schedule
        self.feed, self.checkpoint, self.ema, self.bn_images = parts.feed, parts.checkpoint, parts.ema, parts.bn_images
        self.global_batch = self.feed.global_batch
        self.steps_per_epoch = self.feed.steps_per_epoch
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.skipped = {"train": 0.0, "eval": 0.0}
        self.step_losses: list[float] = []  # mean train loss of every step run by this process

    # The engine interface (see the module docstring) ----------------------------------------
    @abc.abstractmethod
    def restore_or_start(self) -> int:
        """Resume from model_dir's latest checkpoint (or record config.json); the step to start at."""

    @abc.abstractmethod
    def current_step(self) -> int:
        """Steps trained so far: the schedule's position and the checkpoint number."""

    @abc.abstractmethod
    def train_step(self, iterator: Iterator[Any]) -> StepMetrics:
        """One update on the iterator's next global batch; its metrics on the host. Advances the step."""

    @abc.abstractmethod
    def eval_step(self, iterator: Iterator[Any]) -> StepMetrics:
        """The eval metrics of the iterator's next batch under the model's current weights."""

    @abc.abstractmethod
    def save_checkpoint(self) -> None:
        """Save the whole run state as checkpoint current_step()."""

    @abc.abstractmethod
    def swap_ema(self) -> None:
        """Exchange the model's weights with their EMA (called twice, it restores them)."""

    @abc.abstractmethod
    def bn_statistics(self, iterator: Iterator[Any], batches: int) -> None:
        """Set the BN moving statistics to their average over `batches` batches of `iterator`."""

    @abc.abstractmethod
    def export(self) -> str | None:
        """model_dir/model.keras with the final (EMA when on) weights; the path on the chief, else None."""

    def any_process(self, flag: bool) -> bool:
        """Whether `flag` holds on any process of the run (engines with several processes agree here)."""
        return flag

    def _stop_preempted(self, step: int) -> None:
        """A preemption notice arrived: checkpoint this step (unless just saved) and raise Preempted."""
        if step % self.cfg.checkpoint_every != 0:
            self.save_checkpoint()
        raise Preempted(self.preemption.received or "a notice on another process", step, self.total_steps,
                        self.checkpoint.latest, self.cfg.model_dir)

    @property
    def has_bn_statistics(self) -> bool:
        """Whether precise BN runs before each evaluation (--precise_bn_images and the engine can)."""
        return bool(self.cfg.precise_bn_images)

    # Evaluation ------------------------------------------------------------------------------
    def recompute_bn_statistics(self) -> None:
        """Precise BN: the BN moving statistics from --precise_bn_images training images, now.

        The batches are the first of the current epoch's stream (a pure function of the seed and
        epoch), so a resumed run recomputes the same statistics.
        """
        if not self.has_bn_statistics:
            return
        batches = min(max(1, self.cfg.precise_bn_images // self.global_batch), self.steps_per_epoch)
        epoch = max(self.current_step() - 1, 0) // self.steps_per_epoch
        self.bn_statistics(self.feed.train(epoch, 0, batches), batches)

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

    def ema_weights(self) -> contextlib.AbstractContextManager[None]:
        """Context manager: the model holds the EMA weights inside, its own weights again after."""

        @contextlib.contextmanager
        def swapped() -> Iterator[None]:
            self.swap_ema()
            try:
                yield
            finally:
                self.swap_ema()

        return swapped() if self.ema is not None else contextlib.nullcontext()

    # The run ---------------------------------------------------------------------------------
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
            self._report_eval(scalars, step, metrics)
        # A run that had nothing left to train is re-evaluated (its skipped-eval count too).
        final = history[-1] if step > start_step else self.evaluate_final_weights()
        return {**final, "train_time_s": train_time, "steps": self.current_step(),
                "epochs": self.total_steps / self.steps_per_epoch, "resumed_from_step": start_step,
                "images_per_s": images_per_s, "history": history,
                "skipped_images": dict(self.skipped), "ema_decay": cfg.ema_decay,
                "bn_images": self.bn_images, "precise_bn_images": cfg.precise_bn_images,
                "eval_weights": "ema" if self.ema is not None else "raw"}

    def _report_eval(self, scalars: reporting.Scalars, step: int, metrics: dict[str, Any]) -> None:
        """TensorBoard scalars and the chief's one-line summary of an epoch-end evaluation."""
        keys = ("loss", "top1_err", "top5_err")
        scalars.write("eval", step, {k: metrics[k] for k in keys})
        if self.ema is not None:
            scalars.write("eval_raw", step, {k: metrics[f"raw_{k}"] for k in keys})
        if self.cfg.verbose and self.runtime.is_chief:
            label = "eval (EMA)" if self.ema is not None else "eval"
            raw = f"  [raw weights: top-1 err {metrics['raw_top1_err']:.2f}%]" if self.ema is not None else ""
            print(f"  {label}: loss {metrics['loss']:.4f}  top-1 err {metrics['top1_err']:.2f}%  "
                  f"top-5 err {metrics['top5_err']:.2f}%{raw}", flush=True)

    def _train_epoch(self, epoch: int, start: int, count: int, scalars: reporting.Scalars) -> tuple[int, float]:
        """Steps start .. start+count-1 of `epoch`: progress, TensorBoard, NaN stop, mid-epoch checkpoints."""
        cfg = self.cfg
        iterator = self.feed.train(epoch, start, count)
        progress = reporting.Progress(epoch, cfg.epochs, self.steps_per_epoch, start,
                                      cfg.verbose if self.runtime.is_chief else 0)
        epoch_totals = Totals()  # the bar shows this epoch's running means, not the last batch
        for i in range(start, start + count):
            metrics = self.train_step(iterator)
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
            if self.preemption is not None and i + 1 < start + count and self.preemption.requested(self.any_process):
                self._stop_preempted(step)  # at an epoch's last step: its checkpoint and eval come first
        return self.current_step(), progress.images_per_second()

    # Progress across restarts ------------------------------------------------------------------
    def _progress_path(self) -> str:
        return fileio.join(self.cfg.model_dir, PROGRESS_FILE)

    def _save_progress(self, history: list[dict[str, Any]], train_time: float) -> None:
        """Chief: record the per-epoch history, training time and skipped count so far."""
        if self.runtime.is_chief:
            with guarded_write("run progress", self._progress_path()):
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
