"""The TensorFlow engine's run checkpoints: what is saved and where each worker writes.

Checkpoints (tf.train.CheckpointManager: data files first, then an atomically renamed index) hold
the model, the optimizer (momentum, iteration count), the global step, the epoch and the EMA
shadows under those names; whether a model_dir resumes is training.core.run_identity's rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_regnet import fileio
from training.core.config import TrainConfig
from training.core.run_identity import admit_resume
from training.core.write_guard import guarded_write


class RunCheckpoint:
    """Saves and restores `tracked` objects under model_dir/checkpoints; the chief alone keeps them.

    Other workers of a multi-worker run must take part in saving (it is collective); they write to
    model_dir/tmp/worker_<i>, which is deleted right after.
    """

    def __init__(self, cfg: TrainConfig, runtime: Any, identity: dict[str, Any], **tracked: Any) -> None:
        self.cfg, self.identity = cfg, identity
        self.is_chief, self.worker_index = runtime.is_chief, runtime.worker_index
        self.tracked = tracked
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._write_dir(),
                                                  max_to_keep=cfg.keep_checkpoints)

    def _write_dir(self) -> str:
        if self.is_chief:
            return fileio.join(self.cfg.model_dir, "checkpoints")
        return fileio.join(self.cfg.model_dir, "tmp", f"worker_{self.worker_index}")

    @property
    def latest(self) -> str | None:
        """The newest checkpoint this run saved (None before the first save)."""
        return self.manager.latest_checkpoint

    def restore_or_start(self) -> bool:
        """Restore the chief's latest checkpoint if any (after checking the run matches); else record
        the run's config.json (chief). True when a checkpoint was restored."""
        latest = tf.train.latest_checkpoint(fileio.join(self.cfg.model_dir, "checkpoints"))
        if admit_resume(self.cfg, self.identity, latest, self.is_chief):
            self.checkpoint.restore(latest).expect_partial()
            return True
        return False

    def save(self, number: int) -> None:
        """Save as checkpoint `number` (the global step); non-chief workers drop their copy.

        A failed write (full disk, permission) removes SaveV2's ckpt-<n>_temp files and raises WriteFailed
        (one line); the previous checkpoint stays the latest, as the index is renamed in last.
        """
        path = fileio.join(self._write_dir(), f"ckpt-{number}")
        with guarded_write("checkpoint", path, self.state_bytes, cleanup=self._remove_temporary, kept=self.latest):
            self.manager.save(checkpoint_number=number)
        if not self.is_chief:
            fileio.rmtree(self._write_dir())

    def state_bytes(self) -> int:
        """Bytes of the saved state's variables (what a checkpoint needs on disk, near enough)."""
        total = 0
        for tracked in self.tracked.values():
            variables = [tracked] if isinstance(tracked, tf.Variable) else getattr(tracked, "variables", [])
            total += sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)
        return total

    def _remove_temporary(self) -> None:
        """Delete what an interrupted SaveV2 left: ckpt-<n>_temp/ (sharded) or ckpt-<n>_temp* files."""
        for leftover in fileio.glob(fileio.join(self._write_dir(), "*_temp*")):
            if fileio.isdir(leftover):
                fileio.rmtree(leftover)
            else:
                fileio.remove(leftover)
