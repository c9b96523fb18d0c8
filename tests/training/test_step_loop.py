"""The shared step loop (training.core.loop) on a recording engine: no host read before the next step is
dispatched, one read per step, checkpoints only from a state read and found finite, the host LR equal to
the schedule's. No model is built: each test takes well under a second."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from training.core.config import TrainConfig
from training.core.divergence import NonFiniteLoss
from training.core.loop import Trainer
from training.core.metrics import OUTPUT_FIELDS, StepResult
from training.core.parts import Parts
from training.core.recipe import WarmupCosine, lr_at
from training.core.write_guard import WriteFailed

STEPS_PER_EPOCH, BATCH = 7, 4


@dataclass
class Runtime:
    is_chief: bool = False  # no TensorBoard writer, no progress.json: the loop alone


class Feed:
    global_batch, steps_per_epoch, eval_steps = BATCH, STEPS_PER_EPOCH, 1

    def train(self, epoch: int, start: int, count: int):
        return iter(range(count))

    def eval(self):
        return iter([0])


@dataclass
class Checkpoints:
    saved: list[int] = field(default_factory=list)

    @property
    def latest(self) -> str | None:
        return f"ckpt-{self.saved[-1]}" if self.saved else None


class RecordingTrainer(Trainer):
    """An engine whose step 'outputs' are the step number; `events` logs dispatches, reads and saves in order."""

    def __init__(self, cfg: TrainConfig, nan_loss_at: int = 0, bad_state_at: int = 0) -> None:
        parts = Parts(model=None, optimizer=None, schedule=WarmupCosine(0.4, STEPS_PER_EPOCH * cfg.epochs, 3),
                      feed=Feed(), checkpoint=Checkpoints(), ema=None, bn_images=BATCH)
        super().__init__(cfg, Runtime(), parts)
        self.nan_loss_at, self.bad_state_at = nan_loss_at, bad_state_at
        self.events: list[tuple[str, int]] = []
        self._step, self.swapped, self.save_seconds = 0, False, 0.0

    def restore_or_start(self) -> int:
        return 0

    def current_step(self) -> int:
        return self._step

    def train_step(self, iterator) -> Any:
        next(iterator)
        self._step += 1
        self.events.append(("dispatch", self._step))
        return self._step

    def read_step(self, outputs: Any) -> StepResult:
        self.events.append(("read", outputs))
        loss = math.nan if outputs == self.nan_loss_at else 2.0
        return StepResult.unpack([loss, 1.0, 3.0, BATCH, 0.0, float(outputs != self.bad_state_at)])

    def eval_step(self, iterator) -> Any:
        next(iterator)
        self.events.append(("eval_ema" if self.swapped else "eval", self._step))
        return StepResult.unpack([1.0, 2.0 if self.swapped else 1.0, 3.0, BATCH, 0.0, 1.0]).metrics

    def save_checkpoint(self) -> None:
        time.sleep(self.save_seconds)
        self.events.append(("save", self._step))
        self.checkpoint.saved.append(self._step)

    def swap_ema(self) -> None:
        assert self.ema is not None
        self.swapped = not self.swapped

    def bn_statistics(self, iterator, batches: int) -> None:
        raise AssertionError("no precise BN in these runs")

    def export(self) -> str | None:
        return None


def _cfg(**kw: Any) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "lr": 0.4, "checkpoint_every": 3, "verbose": 0, "precise_bn_images": 0,
                          "model_dir": "/nonexistent", **kw})


def _index(events: list[tuple[str, int]], event: tuple[str, int]) -> int:
    assert events.count(event) == 1, (event, events)
    return events.index(event)


def test_each_step_is_read_once_after_the_next_is_dispatched_and_saved_only_once_read():
    trainer = RecordingTrainer(_cfg())
    result = trainer.fit()
    events, total = trainer.events, 2 * STEPS_PER_EPOCH
    assert result["steps"] == total
    # Host reads per step: exactly one (the counted function is the engine's only host read of a step).
    assert sum(kind == "read" for kind, _ in events) == total
    saves = [s for kind, s in events if kind == "save"]
    assert saves == [3, 6, 7, 9, 12, 14]  # every 3rd step (global count) and each epoch end
    for step in range(1, total + 1):
        read = _index(events, ("read", step))
        assert _index(events, ("dispatch", step)) < read
        if step not in saves:  # the steady state: the read waits until the next step is queued
            assert _index(events, ("dispatch", step + 1)) < read, events
        if not {step, step + 1} & set(saves):  # ... and the one after it (READ_LAG = 2)
            assert _index(events, ("dispatch", step + 2)) < read, events
    for step in saves:  # a checkpoint only after its step was read (and found finite)
        assert _index(events, ("read", step)) < events.index(("save", step))
    assert len(trainer.step_losses) == total and trainer.step_losses[0] == pytest.approx(2.0 / BATCH)


def test_a_nan_loss_stops_at_its_step_naming_the_last_checkpoint_before_it():
    trainer = RecordingTrainer(_cfg(checkpoint_every=2), nan_loss_at=5)
    with pytest.raises(NonFiniteLoss, match=r"training loss became nan at step 5 \(epoch 1\); stopped, try a "
                                            r"lower --lr \(was 0.4\)\. Last good checkpoint: ckpt-4$"):
        trainer.fit()
    assert trainer.checkpoint.saved == [2, 4]
    assert ("dispatch", 6) in trainer.events  # detected one step late, while step 6 ran


def test_a_non_finite_state_with_a_finite_loss_stops_before_its_checkpoint():
    """An update can overflow the weights or BN statistics before the loss shows it (issue 35, item 1)."""
    trainer = RecordingTrainer(_cfg(checkpoint_every=2), bad_state_at=4)
    with pytest.raises(NonFiniteLoss, match=r"training state became non-finite .* at step 4 .*"
                                            r"Last good checkpoint: ckpt-2$"):
        trainer.fit()
    assert trainer.checkpoint.saved == [2]  # step 4's checkpoint was due and is not written


def test_the_step_output_vector_has_the_metrics_then_the_flag():
    result = StepResult.unpack(np.array([6.0, 2.0, 3.0, 4.0, 1.0, 0.0], np.float32))
    assert OUTPUT_FIELDS[-1] == "state_finite" and not result.state_finite
    assert result.metrics.loss_sum == 6.0 and result.metrics.invalid == 1.0
    with pytest.raises(RuntimeError, match="has 6 values, got 5"):
        StepResult.unpack([1.0] * 5)


def test_the_host_lr_equals_the_schedule_at_every_step():
    """WarmupCosine.at (host, Python floats) against the schedule the optimizer runs (keras.ops) and against
    pycls' formula (pycls/core/optimizer.py: lr_fun_cos times get_epoch_lr's linear warm-up), every step."""
    for total, warmup in ((40, 7), (25, 0), (12, 12)):
        schedule = WarmupCosine(0.8, total, warmup, 0.1)
        for step in range(total + 1):
            host = schedule.at(step)
            assert isinstance(host, float)
            assert host == pytest.approx(float(schedule(step)), rel=2e-6, abs=1e-7), (total, warmup, step)
            reference = lr_at(step, 0.8, total, warmup) if warmup else 0.5 * 0.8 * (1 + math.cos(math.pi * step / total))
            assert host == pytest.approx(reference, rel=1e-12, abs=1e-15)


def test_the_logged_lr_is_the_one_the_step_applied():
    trainer = RecordingTrainer(_cfg(epochs=1))
    logged = []
    trainer.schedule.at = lambda step, at=trainer.schedule.at: logged.append(step) or at(step)
    trainer.fit()
    assert logged == list(range(STEPS_PER_EPOCH))  # step n applied the LR of schedule position n - 1


def test_eval_every_skips_epochs_but_not_the_last_and_the_raw_weights_are_evaluated_only_at_the_end():
    trainer = RecordingTrainer(_cfg(epochs=5, eval_every=2))
    trainer.ema = "on"
    result = trainer.fit()
    evals = [(kind, step // STEPS_PER_EPOCH) for kind, step in trainer.events if kind.startswith("eval")]
    assert evals == [("eval_ema", 2), ("eval_ema", 4), ("eval_ema", 5), ("eval", 5)]
    assert [("top1_err" in h, h["epoch"]) for h in result["history"]] == [
        (False, 1), (True, 2), (False, 3), (True, 4), (True, 5)]
    assert "raw_top1_err" in result and "raw_top1_err" not in result["history"][1]
    assert result["top1_err"] == pytest.approx(50.0) and result["raw_top1_err"] == pytest.approx(75.0)
    assert not trainer.swapped


def test_eval_every_must_be_a_positive_integer():
    from training.core.config import validate

    with pytest.raises(ValueError, match="--eval_every"):
        validate(_cfg(eval_every=0))


def test_metrics_split_the_seconds_into_steps_eval_precise_bn_and_checkpoints():
    trainer = RecordingTrainer(_cfg(epochs=2, checkpoint_every=100))
    trainer.save_seconds = 0.2  # two epoch-end checkpoints
    result = trainer.fit()
    assert set(result["seconds"]) == {"steps", "eval", "precise_bn", "checkpoint"}
    assert 0.4 <= result["seconds"]["checkpoint"] < 1.5 and result["seconds"]["steps"] < 0.2
    assert [h["seconds"]["checkpoint"] >= 0.2 for h in result["history"]] == [True, True]
    assert result["train_time_s"] == pytest.approx(result["seconds"]["steps"])
    assert result["wall_s"] >= sum(result["seconds"].values()) - 1e-6
    assert result["wall_images_per_s"] == pytest.approx(2 * STEPS_PER_EPOCH * BATCH / result["wall_s"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
def test_the_engines_state_flags_catch_one_non_finite_value_anywhere(bad):
    """Both engines' on-device flag: one bad value in one array (a BN variance, say) makes it False; huge
    finite values (whose plain sum would overflow) keep it True."""
    import tensorflow as tf

    from training.engines.tensorflow.step import all_finite as tf_all_finite

    arrays = [np.full((3, 4), 3e38, np.float32), np.ones(5, np.float32), np.arange(4, dtype=np.int64)]
    if bad is not None:
        arrays[1][2] = bad
    assert bool(tf_all_finite([tf.Variable(a) for a in arrays]).numpy()) is (bad is None)
    from training.engines.jax.step import TrainState, all_finite

    state = TrainState(arrays[:1], arrays[2:], [], arrays[1:2])  # the bad value in an EMA shadow
    assert bool(all_finite(state)) is (bad is None)


def test_deterministic_asks_xla_for_deterministic_gpu_ops_once(monkeypatch):
    from training.engines.jax.devices import DETERMINISTIC_GPU_FLAG, request_deterministic_gpu_ops

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    request_deterministic_gpu_ops()
    request_deterministic_gpu_ops()
    import os

    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {DETERMINISTIC_GPU_FLAG}"


def test_the_jax_feed_stops_in_one_line_when_tensorflow_still_sees_a_gpu(monkeypatch):
    import tensorflow as tf

    from keras_regnet.errors import ConfigError
    from training.engines.jax.feed import hide_accelerators_from_tensorflow

    def initialised_already(devices, kind):
        raise RuntimeError("Visible devices cannot be modified after being initialized")

    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "set_visible_devices", initialised_already)
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda kind: [gpu] if kind == "GPU" else [])
    with pytest.raises(ConfigError, match=r"TensorFlow was initialised before the JAX engine could hide the GPUs "
                                          r"from it and still sees 1 \(/physical_device:GPU:0\)"):
        hide_accelerators_from_tensorflow()
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda kind: [])
    hide_accelerators_from_tensorflow()  # hidden (or none): no error


class _NeverPreempted:
    received = None

    def requested(self, any_process):
        return any_process(False)


@pytest.mark.parametrize("collective", [False, True])
def test_the_preemption_agreement_is_a_collective_only_every_poll_steps(collective):
    """Alone the notice is checked every step; across processes the agreement (a collective, a host sync)
    runs every PREEMPTION_POLL_STEPS steps, at the same step numbers on every process."""
    from training.core.loop import PREEMPTION_POLL_STEPS

    trainer = RecordingTrainer(_cfg(epochs=3, checkpoint_every=1000))
    trainer.preemption, asked = _NeverPreempted(), []
    trainer.agrees_across_processes = lambda: collective
    trainer.any_process = lambda flag: asked.append(trainer.current_step()) or flag
    trainer.fit()
    every = PREEMPTION_POLL_STEPS if collective else 1
    total = 3 * STEPS_PER_EPOCH
    assert asked == [s for s in range(1, total) if s % every == 0 and s % STEPS_PER_EPOCH != 0]


# Checkpoints written on a background thread (issue 34, item 3) ---------------------------------------------
class BackgroundSaves(RecordingTrainer):
    """save_checkpoint hands its write to self.writes, as the JAX engine does. A write first waits until the
    main thread dispatches a step or evaluates after the save (proof that the loop went on without it), then
    records itself; only a finished write shows in checkpoint.latest (as files on disk do)."""

    def __init__(self, cfg: TrainConfig, fail_at: int = 0, write_pause: float = 0.0, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.fail_at, self.write_pause = fail_at, write_pause
        self.gate = threading.Event()
        self.active, self.most_active, self.went_on = 0, 0, []
        self.lock = threading.Lock()

    def train_step(self, iterator) -> Any:
        self.gate.set()
        return super().train_step(iterator)

    def eval_step(self, iterator) -> Any:
        self.gate.set()
        return super().eval_step(iterator)

    def save_checkpoint(self) -> None:
        step, gate = self._step, threading.Event()
        self.events.append(("submit", step))

        def write() -> None:
            self.events.append(("start", step))
            with self.lock:
                self.active += 1
                self.most_active = max(self.most_active, self.active)
            self.went_on.append(gate.wait(timeout=20))  # False: the loop waited for this write
            time.sleep(self.write_pause)
            with self.lock:
                self.active -= 1
            if step == self.fail_at:
                raise WriteFailed(f"could not write checkpoint ckpt-{step}: no space left on device; "
                                  f"the previous checkpoint {self.checkpoint.latest} stays valid")
            self.events.append(("save", step))
            self.checkpoint.saved.append(step)

        self.gate = gate
        self.writes.submit(write)


def test_a_background_checkpoint_lets_the_loop_go_on_one_write_at_a_time_joined_at_exit():
    trainer = BackgroundSaves(_cfg(), write_pause=0.05)
    result = trainer.fit()
    submitted = [s for kind, s in trainer.events if kind == "submit"]
    assert submitted == [3, 6, 7, 9, 12, 14] and result["steps"] == 2 * STEPS_PER_EPOCH
    # Every write was still waiting when the loop dispatched its next step (or evaluated): save returned first.
    assert trainer.went_on == [True] * len(submitted)
    assert trainer.most_active == 1  # never two writes at once
    # Writes run in submit order, each finished before the next starts.
    for before, after in zip(submitted, submitted[1:]):
        assert _index(trainer.events, ("save", before)) < _index(trainer.events, ("start", after))
    # fit() joined the last write: it is on disk when fit returns, and no thread is left running.
    assert trainer.checkpoint.saved == submitted and not trainer.writes.in_flight


def test_a_failing_background_write_stops_the_run_with_its_one_line_error():
    trainer = BackgroundSaves(_cfg(), fail_at=6)
    with pytest.raises(WriteFailed, match=r"^could not write checkpoint ckpt-6: no space left on device; "
                                          r"the previous checkpoint ckpt-3 stays valid$"):
        trainer.fit()
    # Raised on the main thread by the next save (at step 7), which therefore never started its write.
    assert [s for kind, s in trainer.events if kind == "submit"] == [3, 6, 7]
    assert [s for kind, s in trainer.events if kind == "start"] == [3, 6]
    assert trainer.checkpoint.saved == [3] and not trainer.writes.in_flight


def test_a_nan_stop_waits_for_the_write_in_flight_and_names_it():
    # ckpt-4's write ends well after the loop reads step 5; the stop still names ckpt-4 (joined first).
    trainer = BackgroundSaves(_cfg(checkpoint_every=2), nan_loss_at=5, write_pause=0.3)
    with pytest.raises(NonFiniteLoss, match=r"at step 5 .*Last good checkpoint: ckpt-4$"):
        trainer.fit()
    assert trainer.checkpoint.saved == [2, 4] and not trainer.writes.in_flight


class _PreemptedAt:
    received = "SIGTERM"

    def __init__(self, trainer: Trainer, step: int) -> None:
        self.trainer, self.step = trainer, step

    def requested(self, any_process):
        return any_process(self.trainer.current_step() >= self.step)


def test_a_preemption_stop_waits_for_its_background_checkpoint():
    from training.core.preemption import Preempted

    trainer = BackgroundSaves(_cfg(checkpoint_every=100), write_pause=0.3)
    trainer.preemption = _PreemptedAt(trainer, 4)
    with pytest.raises(Preempted, match=r"stopped after step 4 of 14 with checkpoint ckpt-4 written"):
        trainer.fit()
    assert trainer.checkpoint.saved == [4] and not trainer.writes.in_flight


class PreciseBn(RecordingTrainer):
    def bn_statistics(self, iterator, batches: int) -> None:
        assert batches == 2 and len(list(iterator)) == batches  # --precise_bn_images 8 at batch 4
        self.events.append(("bn_ema" if self.swapped else "bn", self._step))


def test_precise_bn_runs_only_right_before_an_eval_that_reports():
    """Issue 34, item 3: with --eval_every=2 no epoch end without an eval recomputes BN statistics, and each
    evaluation (EMA weights, and the raw weights at the end) gets its own, from the weights it evaluates."""
    trainer = PreciseBn(_cfg(epochs=5, eval_every=2, precise_bn_images=8))
    trainer.ema = "on"
    trainer.fit()
    epoch_ends = [(kind, step // STEPS_PER_EPOCH) for kind, step in trainer.events
                  if kind.startswith(("bn", "eval"))]
    assert epoch_ends == [("bn_ema", 2), ("eval_ema", 2), ("bn_ema", 4), ("eval_ema", 4),
                          ("bn_ema", 5), ("eval_ema", 5), ("bn", 5), ("eval", 5)]
