"""One run per model_dir: a live holder is named and refused, a dead or silent one is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers.paths import REPO_ROOT
from training.core import run_lock
from training.core.run_lock import LOCK_FILE, RunLock, RunLocked

HOLD = ("import sys, time\nfrom training.core.run_lock import RunLock\n"
        "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)")


def _holder(model_dir: str) -> subprocess.Popen:
    """Another process holding model_dir's lock (as a running training would), once it says so."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, model_dir], cwd=str(REPO_ROOT), stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_refused_naming_the_holder_then_takes_over_after_a_sigkill(tmp_path):
    from training.core.config import TrainConfig
    from training.run import run

    model_dir = str(tmp_path / "run")
    os.makedirs(model_dir)
    holder = _holder(model_dir)
    cfg = TrainConfig(model="regnetx_digits", image_size=16, epochs=1, batch_size=64, max_steps=1,
                      model_dir=model_dir, verbose=0, strategy="one_device")
    try:
        with pytest.raises(RunLocked) as refused:
            run(cfg)
        line = str(refused.value)
        assert "\n" not in line and f"pid {holder.pid}" in line and f"host {socket.gethostname()}" in line
        assert "started 20" in line and "UTC" in line and "--model_dir" in line
        assert not os.path.exists(os.path.join(model_dir, "metrics.json"))  # it wrote nothing
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.wait()
    # The holder's file is left behind, naming a dead pid: the next run takes it over and releases it.
    assert json.load(open(os.path.join(model_dir, LOCK_FILE)))["pid"] == holder.pid
    result = run(cfg)
    assert result["steps"] == 1 and not os.path.exists(os.path.join(model_dir, LOCK_FILE))


def _write_lock(path: str, **record) -> None:
    with open(path, "w") as f:
        json.dump({"pid": 1, "start_time": time.time() - 3600, "token": "other", **record}, f)


def test_a_lock_from_another_host_is_kept_while_its_lease_is_renewed_and_taken_over_after(tmp_path):
    path = str(tmp_path / LOCK_FILE)
    _write_lock(path, host="other-host", renewed=time.time() - run_lock.LEASE_S + 30)
    with pytest.raises(RunLocked, match=r"in use by another run \(host other-host, pid 1, started "):
        RunLock(str(tmp_path)).acquire()
    _write_lock(path, host="other-host", renewed=time.time() - run_lock.LEASE_S - 30)
    lock = RunLock(str(tmp_path)).acquire()
    try:
        assert "lease was not renewed" in lock.taken_over
        assert json.load(open(path))["pid"] == os.getpid()
    finally:
        lock.release()
    assert not os.path.exists(path)


def test_a_live_pid_on_this_host_holds_the_lock_even_with_an_old_lease(tmp_path):
    """The lease only matters across hosts: a live local holder is never taken over (a long stall)."""
    path = str(tmp_path / LOCK_FILE)
    _write_lock(path, host=socket.gethostname(), pid=os.getppid(), renewed=0.0)
    with pytest.raises(RunLocked, match=f"pid {os.getppid()}"):
        RunLock(str(tmp_path)).acquire()


def test_the_holder_renews_its_lease_and_release_keeps_a_successors_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "RENEW_S", 0.05)
    path = str(tmp_path / LOCK_FILE)
    lock = RunLock(str(tmp_path)).acquire()
    first = json.load(open(path))["renewed"]
    time.sleep(0.5)
    assert json.load(open(path))["renewed"] > first
    monkeypatch.setattr(run_lock, "RENEW_S", 600.0)
    time.sleep(0.2)  # the renewer's last sleep has ended; it now waits 600 s
    _write_lock(path, host="other-host", renewed=time.time())  # a successor took it over meanwhile
    lock.release()
    assert json.load(open(path))["host"] == "other-host"


def test_the_lock_works_through_the_object_store_api(tmp_path):
    """ram:// goes through tf.io.gfile, as gs:// does: the same refusal and release."""
    pytest.importorskip("tensorflow")
    model_dir = f"ram://{tmp_path}/run"
    lock = RunLock(model_dir).acquire()
    try:
        with pytest.raises(RunLocked, match="in use by another run"):
            other = RunLock(model_dir)
            other.host = "other-host"  # as seen from another machine sharing the bucket
            other.acquire()
    finally:
        lock.release()
    from keras_regnet import fileio

    assert not fileio.exists(f"{model_dir}/{LOCK_FILE}")
