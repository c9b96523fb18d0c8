"""A failed write of a run's files is one line naming the path (and, for a full disk, the bytes needed);
the previous checkpoint stays valid and temporary files are removed (both engines)."""

from __future__ import annotations

import errno
import glob
import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers.paths import REPO_ROOT
from training.core.write_guard import WRITE_FAILED_EXIT_CODE, WriteFailed

ROOT = str(REPO_ROOT)


def _cfg(model_dir: str, **kw):
    from training.core.config import TrainConfig

    return TrainConfig(model="regnetx_digits", image_size=16, epochs=1, batch_size=64, max_steps=4,
                       checkpoint_every=2, model_dir=model_dir, verbose=0, strategy="one_device", **kw)


def test_tensorflow_checkpoint_on_a_full_disk_is_one_line_and_keeps_the_previous_one(tmp_path, monkeypatch):
    import tensorflow as tf

    from training.run import run

    model_dir = str(tmp_path / "run")
    real_save = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kw):
        if checkpoint_number < 4:
            return real_save(self, checkpoint_number=checkpoint_number, **kw)
        # What SaveV2 does on a full disk: a half-written ckpt-4_temp/ shard directory, then the error.
        os.makedirs(os.path.join(self.directory, "ckpt-4_temp", "part-00000-of-00001"), exist_ok=True)
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt-4_temp/part-00000-of-00001.data-00000-of-00001."
                                               "tempstate123; No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    with pytest.raises(WriteFailed) as failed:
        run(_cfg(model_dir))
    line = str(failed.value)
    ckpt_dir = os.path.join(model_dir, "checkpoints")
    assert "\n" not in line
    assert line.startswith(f"could not write checkpoint {os.path.join(ckpt_dir, 'ckpt-4')}: no space left on device")
    needed = int(re.search(r"it needed about ([\d,]+) bytes", line).group(1).replace(",", ""))
    assert needed > 4 * 20000  # the model's float32 weights (~20k) plus the optimizer's momentum: not a token size
    assert f"the previous checkpoint {os.path.join(ckpt_dir, 'ckpt-2')} stays valid" in line
    assert not glob.glob(os.path.join(ckpt_dir, "*_temp*"))  # the temporary shard is gone
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-2")
    reader = tf.train.load_checkpoint(os.path.join(ckpt_dir, "ckpt-2"))
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == 2


def test_metrics_and_model_writes_fail_in_one_line_and_leave_no_temporary_file(tmp_path, monkeypatch):
    import keras

    from keras_regnet import fileio
    from training.run import run

    model_dir = str(tmp_path / "run")
    real_write = fileio.write_json_atomic

    def write_json(path, data):
        if path.endswith("metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_write(path, data)

    monkeypatch.setattr(fileio, "write_json_atomic", write_json)
    with pytest.raises(WriteFailed, match=r"^could not write metrics .*metrics\.json: no space left on device "
                                          r"\(it needed about [\d,]+ bytes; [\d,]+ free\); free space"):
        run(_cfg(model_dir))
    monkeypatch.undo()

    def save(self, filepath, *args, **kw):  # a half-written zip, then the permission error
        open(filepath, "wb").write(b"PK")
        raise PermissionError(errno.EACCES, "Permission denied", filepath)

    monkeypatch.setattr(keras.Model, "save", save)
    with pytest.raises(WriteFailed, match=r"^could not write the model .*model\.keras: permission denied; "
                                          r"check the permissions"):
        run(_cfg(str(tmp_path / "run2")))
    assert not [n for n in os.listdir(tmp_path / "run2") if n.startswith(".tmp")]


JAX_FULL_DISK = textwrap.dedent("""
    import errno, os, runpy, sys
    real, seen = os.fsync, []
    def fsync(fd):  # the second checkpoint's temporary file finds the disk full
        if "/checkpoints/.tmp-" in os.readlink(f"/proc/self/fd/{fd}"):
            seen.append(fd)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    os.fsync = fsync
    sys.argv = ["training.main"] + sys.argv[1:]
    runpy.run_module("training.main", run_name="__main__")
""")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (.[jax])")
def test_jax_checkpoint_on_a_full_disk_is_one_line_and_keeps_the_previous_one(tmp_path):
    model_dir = str(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "jax"}
    cmd = [sys.executable, "-c", JAX_FULL_DISK, "--engine=jax", "--model=regnetx_digits", "--image_size=16",
           "--epochs=1", "--batch_size=64", "--max_steps=4", "--checkpoint_every=2", "--verbose=0",
           f"--model_dir={model_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == WRITE_FAILED_EXIT_CODE, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    ckpt_dir = os.path.join(model_dir, "checkpoints")
    assert "Traceback" not in proc.stderr
    assert re.fullmatch(rf"FATAL could not write checkpoint {re.escape(os.path.join(ckpt_dir, 'ckpt-4.npz'))}: "
                        r"no space left on device \(it needed about [\d,]+ bytes; [\d,]+ free\); the previous "
                        rf"checkpoint {re.escape(os.path.join(ckpt_dir, 'ckpt-2.npz'))} stays valid; .*", line), line
    assert sorted(os.listdir(ckpt_dir)) == ["ckpt-2.npz"]  # no temporary file left
    arrays = np.load(os.path.join(ckpt_dir, "ckpt-2.npz"))
    assert int(arrays["step"]) == 2 and all(np.isfinite(arrays[k]).all() for k in arrays.files)
