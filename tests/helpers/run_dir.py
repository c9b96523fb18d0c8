"""Reading a training run directory from outside the process that writes it (kill/resume tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Callable


def committed_step(model_dir: str) -> int:
    """Step of the checkpoint the manager committed (its state file is renamed in last); 0 if none."""
    try:
        with open(os.path.join(model_dir, "checkpoints", "checkpoint")) as f:
            return int(re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return 0


def sigkill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float, poll: float = 0.05) -> None:
    """SIGKILL a training subprocess as soon as `ready()` holds (e.g. a mid-epoch checkpoint exists).

    Fails with the process's stderr tail if it exits first, or if `ready()` never holds in `timeout` s.
    """
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no mid-epoch checkpoint appeared"
            time.sleep(poll)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def non_finite_arrays(checkpoint: str) -> tuple[int, int]:
    """(non-finite, all) floating-point arrays in a checkpoint: a JAX engine .npz, or a TensorFlow prefix."""
    import numpy as np

    if checkpoint.endswith(".npz"):
        with np.load(checkpoint) as saved:
            arrays = [saved[k] for k in saved.files]
    else:
        import tensorflow as tf

        reader = tf.train.load_checkpoint(checkpoint)
        arrays = [reader.get_tensor(name) for name, dtype in reader.get_variable_to_dtype_map().items()
                  if dtype.is_floating]
    floats = [a for a in arrays if np.issubdtype(a.dtype, np.floating)]
    return sum(not np.isfinite(a).all() for a in floats), len(floats)


def logged_train_scalars(model_dir: str) -> int:
    """Bytes of the chief's TensorBoard train event files: they grow each time step%10==0 is logged."""
    folder = os.path.join(model_dir, "logs", "train")
    try:
        return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    except OSError:
        return 0


def signal_when(proc: subprocess.Popen, sig: int, ready: Callable[[], bool], timeout: float,
                poll: float = 0.05) -> None:
    """Send `sig` to a training subprocess once `ready()` holds (it keeps running: the caller waits)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run ended or stalled before the signal: {proc.stderr.read()[-2000:]}")
        time.sleep(poll)
    proc.send_signal(sig)
