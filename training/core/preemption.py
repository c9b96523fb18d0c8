"""Preemption notices: SIGTERM (and --preemption_signal) end the run at a step boundary with a checkpoint.

SLURM, Kubernetes and cloud VMs send SIGTERM some seconds before they kill a job (SLURM's
`--signal=USR1@60` another). `Notices` turns those signals into a flag; the core loop asks
`requested()` once per step, and when it holds (on any process: every process agrees through the
engine's `any_process`), writes a checkpoint at that step and raises `Preempted`. training.main prints
its one line and exits with PREEMPTED_EXIT_CODE. If no step ends within --preemption_grace_s of the
notice, the process exits with the same code anyway (its last checkpoint stays the newest), so the
exit comes within a bounded time. Backend-free (no TensorFlow or JAX).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable

from keras_regnet.errors import ConfigError

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, run the same command again


class Preempted(Exception):
    """The run stopped on a preemption notice after checkpointing `step` (not an error: resume it)."""

    def __init__(self, signal_name: str, step: int, total_steps: int, checkpoint: str | None, model_dir: str):
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        super().__init__(
            f"preempted by {signal_name}: stopped after step {step} of {total_steps} with checkpoint "
            f"{checkpoint} written; rerun the same command (same --model_dir={model_dir}) to resume from it")


def parse_signal(value: str | None) -> signal.Signals | None:
    """The signal a --preemption_signal value names (SIGUSR1, USR1 or 10); None for 'none'/empty."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    text = str(value).strip().upper()
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals[
            text if text.startswith("SIG") else f"SIG{text}"]
    except (KeyError, ValueError):
        pass
    allowed = "a signal name such as SIGUSR1, SIGUSR2, SIGINT, SIGHUP, or none"
    raise ConfigError(f"--preemption_signal={value!r} is not a signal; use {allowed}")


def check_signal(value: str | None) -> None:
    """ConfigError naming --preemption_signal when it cannot be caught (SIGKILL, SIGSTOP)."""
    sig = parse_signal(value)
    if sig in (signal.SIGKILL, signal.SIGSTOP):
        raise ConfigError(f"--preemption_signal={value!r} cannot be caught by a process; use SIGUSR1, SIGUSR2, "
                          f"SIGINT, SIGHUP or none")


class Notices:
    """While installed (a context manager), SIGTERM and `extra` set a flag instead of ending the process."""

    def __init__(self, extra: str | None = "SIGUSR1", grace_s: float = 60.0,
                 on_timeout: Callable[[str], None] | None = None) -> None:
        self.signals = [signal.SIGTERM] + [s for s in [parse_signal(extra)] if s and s != signal.SIGTERM]
        self.grace_s = grace_s
        self.received: str | None = None  # name of the first notice's signal
        self._previous: dict[signal.Signals, Any] = {}
        self._timer: threading.Timer | None = None
        self._on_timeout = on_timeout or self._exit_without_checkpoint

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
            self._timer = threading.Timer(self.grace_s, self._on_timeout, args=(self.received,))
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _exit_without_checkpoint(name: str) -> None:
        print(f"FATAL preempted by {name}: the run did not stop at a checkpoint within --preemption_grace_s; "
              f"exiting now (rerun the same command to resume from the newest checkpoint in --model_dir)",
              file=sys.stderr, flush=True)
        os._exit(PREEMPTED_EXIT_CODE)

    def requested(self, any_process: Callable[[bool], bool] = bool) -> bool:
        """Whether this process, or (through `any_process`) any process of the run, got a notice."""
        return any_process(self.received is not None)

    def install(self) -> Notices:
        """Catch the signals (main thread only: Python delivers signals there; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        """Restore the previous handlers and cancel the grace timer."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if self._timer is not None:
            self._timer.cancel()

    def __enter__(self) -> Notices:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.uninstall()
