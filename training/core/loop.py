"""The training loop both engines run: epochs, evaluation cadence, progress, TensorBoard, NaN stop, resume.

Like Keras 3's backend-free `Trainer` (keras/src/trainers/trainer.py) with one subclass per backend,
`Trainer` owns the run's bookkeeping and calls a small engine interface that each engine implements in
its own `trainer.py` (training.engines.tensorflow.trainer, training.engines.jax.trainer):

    restore_or_start() -> step     resume from model_dir (or record config.json) and return the step
    current_step() -> int          steps trained so far: the schedule's position, the checkpoint number
    train_step(iterator)           dispatch one update on the next global batch -> its outputs, still on device
    read_step(outputs)             the one host read of a train step: its outputs -> StepResult (metrics, finite)
    eval_step(iterator)            the eval metrics of the next batch -> StepMetrics (host)
    save_checkpoint()              the whole run state at current_step() (may hand the write to self.writes)
    swap_ema()                     exchange the model's weights with their EMA (a second call undoes it)
    bn_statistics(iterator, n)     precise BN: set the BN moving statistics from n training batches
    export() -> path | None        model_dir/model.keras from the final (EMA when on) weights, chief only

The step loop never waits for the device in the steady state: steps N+1 and N+2 are dispatched before step
N's outputs are read (`read_step`, one small vector per step), the logged LR is computed on the host
from the step count (`WarmupCosine.at`), and the NaN check runs on the lagged values. A checkpoint
is written only after the step it holds has been read and found finite (loss and state), so the
"last good checkpoint" of a divergence stop is one that resumes. An engine may write its checkpoints
on a background thread (`self.writes`, one write in flight): the loop joins the last write before a
divergence or preemption stop names the latest checkpoint, and at the end of `fit`.

The engine is handed its parts (model, optimizer, schedule, feed, checkpoint) by its assembly and
builds none of them. The Feed is a pure function of (seed, epoch, position), so a restarted run
continues exactly where its last checkpoint was. This module imports neither TensorFlow nor JAX.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from typing import Any

from keras_regnet import fileio
from training.core import reporting
from training.core.background_write import BackgroundWriter
from training.core.config import TrainConfig
from training.core.divergence import NonFiniteLoss
from training.core.metrics import StepMetrics, StepResult, Totals, accumulate
from training.core.parts import Parts
from training.core.preemption import Notices, Preempted
from training.core.write_guard import guarded_write

# Steps dispatched ahead of the host's read: the device has this many queued while the host reads the
# oldest (2: a host pause of up to one step, e.g. a TensorBoard write or a late wake-up, idles nothing).
READ_LAG = 2

# With several processes a preemption notice is agreed by a collective: done every this many steps
# (all processes count steps alike, so they meet at the same step), not every step.
PREEMPTION_POLL_STEPS = 10

SECONDS_KINDS = ("steps", "eval", "precise_bn", "checkpoint")

# Per-epoch history, cumulative training time and skipped count, rewritten at every epoch end so
# that a resumed run's metrics.json covers the whole run (model_dir/progress.json).
PROGRESS_FILE = "progress.json"


class Trainer(abc.ABC):
    """One run's loop over an engine: a resolved TrainConfig, the engine's runtime and its Parts."""

    preemption: Notices | None = None  # set by training.run while the run catches preemption notices
    # False (set by training.run) for a run whose model_dir is thrown away afterwards: no checkpoints and no
    # TensorBoard logs are written, since nothing could resume from or read them (e.g. a sweep's brief trainings).
    persist: bool = True

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
        # Wall-clock seconds of this process by kind (steps, eval, precise_bn, checkpoint): what an epoch end costs.
        self.seconds = dict.fromkeys(SECONDS_KINDS, 0.0)
        # Checkpoint writes handed off by the engine (save_checkpoint): one in flight, joined before stops and at exit.
        self.writes = BackgroundWriter()

    # The engine interface (see the module docstring) ----------------------------------------
    @abc.abstractmethod
    def restore_or_start(self) -> int:
        """Resume from model_dir's latest checkpoint (or record config.json); the step to start at."""

    @abc.abstractmethod
    def current_step(self) -> int:
        """Steps trained so far: the schedule's position and the checkpoint number."""

    @abc.abstractmethod
    def train_step(self, iterator: Iterator[Any]) -> Any:
        """Dispatch one update on the iterator's next global batch; its outputs, not read. Advances the step."""

    @abc.abstractmethod
    def read_step(self, outputs: Any) -> StepResult:
        """The one host read of a train step's outputs (waits for that step to finish)."""

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

    def compilation(self) -> dict[str, Any] | None:
        """Compile seconds and compilation-cache hits of the run, for metrics.json (engines that count them)."""
        return None

    def any_process(self, flag: bool) -> bool:
        """Whether `flag` holds on any process of the run (engines with several processes agree here)."""
        return flag

    def preemption_poll_steps(self) -> int:
        """Steps between preemption checks: every step alone; every PREEMPTION_POLL_STEPS steps when the
        check is a collective across processes, so the agreement does not sync the host every step."""
        return PREEMPTION_POLL_STEPS if self.agrees_across_processes() else 1

    def agrees_across_processes(self) -> bool:
        """Whether any_process is a collective (several processes or workers); engines say."""
        return False

    def _stop_preempted(self, step: int) -> None:
        """A preemption notice arrived: checkpoint this step (unless just saved) and raise Preempted."""
        if step % self.cfg.checkpoint_every != 0:
            self._save()
        self.finish_writes()  # the checkpoint it names is on disk before the process exits
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
        with self.timed("precise_bn"):
            self.recompute_bn_statistics()
        with self.timed("eval"):
            totals = accumulate(self.eval_step, self.feed.eval(), self.feed.eval_steps)
        self.skipped["eval"] = totals.invalid  # padding has its own label and is not counted
        return totals.summary()

    def evaluate_final_weights(self, with_raw: bool = True) -> dict[str, Any]:
        """Eval of the weights that get exported: the EMA (plus, with_raw, the raw weights' as raw_*) if on."""
        if self.ema is None:
            return self.evaluate()
        with self.ema_weights():
            averaged = self.evaluate()
        if not with_raw:
            return averaged
        raw = self.evaluate()
        return {**averaged, **{f"raw_{k}": raw[k] for k in ("loss", "top1_err", "top5_err")}}

    @contextlib.contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        """Add the wall-clock seconds of the block to self.seconds[kind]."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[kind] += time.perf_counter() - t0

    def _save(self) -> None:
        """save_checkpoint(), timed (with a background writer: the host copy and the wait for the previous write);
        nothing when the run does not persist."""
        if not self.persist:
            return
        with self.timed("checkpoint"):
            self.save_checkpoint()

    def finish_writes(self) -> None:
        """Wait for the checkpoint write in flight (timed); its failure is raised here as WriteFailed."""
        if not self.persist:  # nothing was written, nothing to wait for or time
            return
        with self.timed("checkpoint"):
            self.writes.join()

    def evaluates_after(self, epoch: int, step: int) -> bool:
        """Whether epoch `epoch` (0-based) ends with an evaluation: every --eval_every epochs and the last."""
        return (epoch + 1) % self.cfg.eval_every == 0 or step >= self.total_steps

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
        logs = self.runtime.is_chief and self.persist
        scalars = reporting.Scalars(fileio.join(cfg.model_dir, "logs") if logs else None)
        try:
            try:
                result = self._fit(start_step, scalars)
            except BaseException:
                self.writes.wait()  # the stop already raised is the one reported; the write still completes
                raise
            self.finish_writes()  # the last checkpoint is on disk (or its failure raised) before fit returns
            return result
        finally:
            scalars.flush()

    def _fit(self, start_step: int, scalars: reporting.Scalars) -> dict[str, Any]:
        """fit() from `start_step`: epochs of steps, each ended by a checkpoint, an evaluation and a flush."""
        cfg = self.cfg
        history, train_time, images_per_s = self._load_progress(start_step)
        step = start_step
        wall0 = time.perf_counter()
        while step < self.total_steps:
            epoch, start = divmod(step, self.steps_per_epoch)
            count = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch) - start
            before = dict(self.seconds)
            t0 = time.perf_counter()
            step, images_per_s = self._train_epoch(epoch, start, count, scalars)
            epoch_steps = time.perf_counter() - t0 - (self.seconds["checkpoint"] - before["checkpoint"])
            train_time += epoch_steps
            self.seconds["steps"] += epoch_steps
            self._save()
            evaluated = self.evaluates_after(epoch, step)
            # Precise BN runs inside evaluate(): only before an eval that reports; the raw weights only at the end.
            metrics = self.evaluate_final_weights(with_raw=step >= self.total_steps) if evaluated else {}
            metrics.update(epoch=epoch + 1, step=step, images_per_s=images_per_s,
                           seconds={k: round(v - before[k], 4) for k, v in self.seconds.items()})
            history.append(metrics)
            self._save_progress(history, train_time)
            if evaluated:
                self._report_eval(scalars, step, metrics)
            scalars.flush()
        self.finish_writes()  # the last checkpoint's write counts in this run's wall-clock seconds
        # A run that had nothing left to train is re-evaluated (its skipped-eval count too).
        final = history[-1] if step > start_step else self.evaluate_final_weights()
        wall = time.perf_counter() - wall0
        trained = (self.current_step() - start_step) * self.global_batch
        return {**final, "train_time_s": train_time, "steps": self.current_step(),
                # This process's whole run: images over wall-clock seconds (epoch ends included) and where they went.
                "wall_images_per_s": trained / wall if wall > 0 and trained else 0.0, "wall_s": wall,
                "seconds": dict(self.seconds),
                "epochs": self.total_steps / self.steps_per_epoch, "resumed_from_step": start_step,
                "images_per_s": images_per_s, "history": history,
                "skipped_images": dict(self.skipped), "ema_decay": cfg.ema_decay,
                "bn_images": self.bn_images, "precise_bn_images": cfg.precise_bn_images,
                "eval_weights": "ema" if self.ema is not None else "raw"}

    def _report_eval(self, scalars: reporting.Scalars, step: int, metrics: dict[str, Any]) -> None:
        """TensorBoard scalars and the chief's one-line summary of an epoch-end evaluation."""
        keys = ("loss", "top1_err", "top5_err")
        scalars.write("eval", step, {k: metrics[k] for k in keys})
        with_raw = "raw_top1_err" in metrics
        if with_raw:
            scalars.write("eval_raw", step, {k: metrics[f"raw_{k}"] for k in keys})
        if self.cfg.verbose and self.runtime.is_chief:
            label = "eval (EMA)" if self.ema is not None else "eval"
            raw = f"  [raw weights: top-1 err {metrics['raw_top1_err']:.2f}%]" if with_raw else ""
            print(f"  {label}: loss {metrics['loss']:.4f}  top-1 err {metrics['top1_err']:.2f}%  "
                  f"top-5 err {metrics['top5_err']:.2f}%{raw}", flush=True)

    def _train_epoch(self, epoch: int, start: int, count: int, scalars: reporting.Scalars) -> tuple[int, float]:
        """Steps start .. start+count-1 of `epoch`: progress, TensorBoard, NaN stop, mid-epoch checkpoints."""
        log = EpochLog(self, epoch, start, count, scalars)
        iterator = self.feed.train(epoch, start, count)
        in_flight: collections.deque[InFlight] = collections.deque()
        for _ in range(count):
            self._advance(iterator, in_flight, log)
        self._drain(in_flight, log)
        return self.current_step(), log.progress.images_per_second()

    def _advance(self, iterator: Iterator[Any], in_flight: collections.deque[InFlight], log: EpochLog) -> None:
        """One pass of the step loop: dispatch the next update, then read the oldest step beyond READ_LAG.

        The device always has the next step queued while the host reads, logs and checks. A checkpoint
        step is read (its loss and state checked, with every step before it) before its checkpoint is written.
        """
        outputs = self.train_step(iterator)
        step = self.current_step()
        in_flight.append(InFlight(step, outputs))
        while len(in_flight) > READ_LAG:
            self._settle(in_flight.popleft(), log)
        if step % self.cfg.checkpoint_every == 0 and step < log.end_step:
            self._drain(in_flight, log)
            self._save()
        if (self.preemption is not None and step < log.end_step and step % self.preemption_poll_steps() == 0
                and self.preemption.requested(self.any_process)):
            self._drain(in_flight, log)  # the preemption checkpoint, too, only from a checked state
            self._stop_preempted(step)  # at an epoch's last step: its checkpoint and eval come first

    def _drain(self, in_flight: collections.deque[InFlight], log: EpochLog) -> None:
        """Read every dispatched step still unread, oldest first."""
        while in_flight:
            self._settle(in_flight.popleft(), log)

    def _settle(self, in_flight: InFlight, log: EpochLog) -> None:
        """Read a dispatched step's outputs, stop if its loss or state is not finite, and log it."""
        result = self.read_step(in_flight.outputs)
        self._check_finite(in_flight.step, result, log.epoch)
        self.step_losses.append(Totals.of(result.metrics).loss)
        self.skipped["train"] += result.metrics.invalid
        log.add(in_flight.step, result.metrics)

    def _check_finite(self, step: int, result: StepResult, epoch: int) -> None:
        """NonFiniteLoss naming the last good checkpoint when step `step` gave a non-finite loss or state."""
        loss = result.metrics.loss_sum
        if math.isfinite(loss) and result.state_finite:
            return
        self.finish_writes()  # the last good checkpoint named below is the newest on disk
        what = (f"loss became {loss}" if not math.isfinite(loss) else
                f"state became non-finite (weights, optimizer slots, BN statistics or EMA; loss sum {loss:.4g})")
        raise NonFiniteLoss(
            f"training {what} at step {step} (epoch {epoch + 1}); stopped, try a lower --lr (was {self.cfg.lr:g}). "
            f"Last good checkpoint: {self.checkpoint.latest or 'none'}"
        )

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


@dataclasses.dataclass(frozen=True)
class InFlight:
    """A dispatched train step whose outputs have not been read yet."""

    step: int  # the step count after it
    outputs: Any


class EpochLog:
    """An epoch's running record on the host: progress bar, running means, TensorBoard scalars every 10 steps."""

    def __init__(self, trainer: Trainer, epoch: int, start: int, count: int, scalars: reporting.Scalars) -> None:
        cfg = trainer.cfg
        self.trainer, self.epoch, self.scalars = trainer, epoch, scalars
        self.first_step = epoch * trainer.steps_per_epoch  # the step count before this epoch's first step
        self.end_step = self.first_step + start + count
        self.progress = reporting.Progress(epoch, cfg.epochs, trainer.steps_per_epoch, start,
                                           cfg.verbose if trainer.runtime.is_chief else 0)
        self.totals = Totals()  # the bar shows this epoch's running means, not the last batch

    def add(self, step: int, metrics: StepMetrics) -> None:
        """Record step `step`'s metrics (read from the device) with the LR it applied."""
        trainer = self.trainer
        self.totals.add(metrics)
        lr = trainer.schedule.at(step - 1)  # the LR this step applied, on the host: no device op
        self.progress.update(step - self.first_step, trainer.global_batch,
                             {"loss": self.totals.loss, "top1": self.totals.top1 / self.totals.examples, "lr": lr})
        if step % 10 == 0 or step == self.end_step:
            self.scalars.write("train", step, {**Totals.of(metrics).errors(), "lr": lr,
                                               "images_per_s": self.progress.images_per_second()})
