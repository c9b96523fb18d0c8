"""The JAX engine's run checkpoints: the whole TrainState and the global step as one .npz per save.

model_dir/checkpoints/ckpt-<step>.npz, written whole through a temporary file and renamed (a run
killed mid-save keeps its previous checkpoint), the newest --keep_checkpoints kept; config.json
records the run as for the TensorFlow engine and the same rules decide whether a model_dir resumes.
Only the chief (process 0) writes; every process restores the same file.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np

from keras_regnet import fileio
from keras_regnet.errors import ConfigError
from training.core.config import TrainConfig
from training.core.write_guard import guarded_write
from training.engines.jax.step import TrainState

_NAME = re.compile(r"^ckpt-(\d+)\.npz$")


class StateCheckpoint:
    """Saves and restores a TrainState (and the step) under model_dir/checkpoints."""

    def __init__(self, cfg: TrainConfig, identity: dict[str, Any], is_chief: bool) -> None:
        self.cfg, self.identity, self.is_chief = cfg, identity, is_chief
        self.directory = fileio.join(cfg.model_dir, "checkpoints")

    def _saved(self) -> list[int]:
        """Steps of the checkpoints on disk, oldest first."""
        if not fileio.isdir(self.directory):
            return []
        names = (_NAME.match(n.rstrip("/")) for n in fileio.listdir(self.directory))
        return sorted(int(m.group(1)) for m in names if m)

    def _path(self, step: int) -> str:
        return fileio.join(self.directory, f"ckpt-{step}.npz")

    @property
    def latest(self) -> str | None:
        """The newest checkpoint file (None before the first save)."""
        saved = self._saved()
        return self._path(saved[-1]) if saved else None

    def restore_or_start(self, template: TrainState) -> tuple[TrainState, int] | None:
        """(state, step) of the latest checkpoint if the run may resume it, else None (config.json written)."""
        from training.core.run_identity import admit_resume
        from training.engines.jax.devices import agree_on_checkpoint

        latest = self.latest
        if latest is None and fileio.exists(fileio.join(self.directory, "checkpoint")):
            raise ConfigError(f"--model_dir={self.cfg.model_dir!r} holds TensorFlow-engine checkpoints; resume it "
                              f"with --engine=tensorflow (KERAS_BACKEND=tensorflow) or choose a fresh --model_dir")
        agree_on_checkpoint(self._saved()[-1] if latest else None, self.cfg.model_dir)  # process 0's or none
        if not admit_resume(self.cfg, self.identity, latest, self.is_chief):
            return None
        arrays = dict(np.load(io.BytesIO(fileio.read_bytes(latest))))
        return unflatten(arrays, template), int(arrays["step"])

    def save(self, step: int, state: TrainState) -> None:
        """Write checkpoint `step` (chief only; `state` as numpy) and drop the oldest beyond --keep_checkpoints."""
        if not self.is_chief:
            return
        buffer = io.BytesIO()
        np.savez(buffer, step=np.int64(step), **flatten(state))
        data = buffer.getvalue()
        with guarded_write("checkpoint", self._path(step), len(data), kept=self.latest):
            fileio.write_bytes_atomic(self._path(step), data)  # its temporary file is removed on failure
        for old in self._saved()[:-self.cfg.keep_checkpoints]:
            fileio.remove(self._path(old))


def flatten(state: TrainState) -> dict[str, np.ndarray]:
    """{"trainable/0": ..., "optimizer/3": ..., ...}: the state's arrays by field and position."""
    return {f"{field}/{i}": np.asarray(v) for field in TrainState._fields
            for i, v in enumerate(getattr(state, field))}


def unflatten(arrays: dict[str, np.ndarray], template: TrainState) -> TrainState:
    """A TrainState shaped like `template` from flatten()'s arrays; ConfigError if the shapes disagree."""
    fields = {}
    for field in TrainState._fields:
        values = []
        for i, like in enumerate(getattr(template, field)):
            key = f"{field}/{i}"
            if key not in arrays or arrays[key].shape != np.shape(like):
                raise ConfigError(f"the checkpoint in --model_dir does not match this run's {field} state "
                                  f"({key}); use the run's own flags or a fresh --model_dir")
            values.append(arrays[key])
        fields[field] = values
    return TrainState(**fields)
