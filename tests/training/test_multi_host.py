"""Multi-host JAX runs cannot split: cluster launches are detected, and every process resumes one step."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys

import pytest

from keras_regnet.errors import ConfigError
from tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (.[jax])")
ROOT = str(REPO_ROOT)


def test_a_cluster_launch_initialises_jax_distributed_or_refuses_naming_the_flags(monkeypatch):
    import jax

    from training.engines.jax import devices

    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setattr(jax.config, "update", lambda *args: None)
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    devices.initialize_processes(None, None, None)
    assert calls == [{"initialization_timeout": 120}]  # JAX's own cluster detection (SLURM, Open MPI)
    monkeypatch.setattr(devices, "_INITIALIZED", False)

    def fail(**kw):
        raise ValueError("coordinator_address should be defined.")

    monkeypatch.setattr(jax.distributed, "initialize", fail)
    with pytest.raises(ConfigError, match=r"one of several started by Open MPI \(OMPI_COMM_WORLD_SIZE=2\).*"
                                          r"pass --coordinator_address=HOST:PORT --num_processes=N --process_id=I"):
        devices.initialize_processes(None, None, None)
    monkeypatch.setattr(devices, "_INITIALIZED", False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_whose_model_dirs_hold_different_checkpoints_both_stop_in_one_line(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "jax",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    procs = []
    for index, step in enumerate((3, 5)):
        model_dir = tmp_path / f"run{index}"
        (model_dir / "checkpoints").mkdir(parents=True)
        (model_dir / "checkpoints" / f"ckpt-{step}.npz").write_bytes(b"")  # never read: the steps disagree first
        cmd = [sys.executable, "-m", "training.main", "--engine=jax", "--model=regnetx_digits", "--image_size=16",
               "--batch_size=64", "--epochs=1", "--verbose=0", f"--coordinator_address=127.0.0.1:{port}",
               "--num_processes=2", f"--process_id={index}", f"--model_dir={model_dir}"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        outputs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 2, err[-3000:]
        line = err.strip().splitlines()[-1]
        assert "the processes see different latest checkpoints" in line, err[-3000:]
        assert "process 0: ckpt-3, process 1: ckpt-5" in line and "Traceback" not in err
