"""One run per model_dir: model_dir/run.lock names the run that holds it (host, pid, start time).

A second run in the same directory refuses in one line naming the holder. A crashed holder's
successor takes the lock over: on the same host when the recorded pid is no longer alive, and from
any host (shared storage such as gs://, through keras_regnet.fileio) when the holder has not renewed
its lease for LEASE_S seconds. The holder renews it every RENEW_S seconds from a daemon thread.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from keras_regnet import fileio
from keras_regnet.errors import ConfigError

LOCK_FILE = "run.lock"
LEASE_S = 600.0  # a lock not renewed for this long is stale (holder on another host, or pid unknown)
RENEW_S = 60.0  # how often the holder rewrites its lease


class RunLocked(ConfigError):
    """Another live run holds --model_dir (a ConfigError: one line, exit code 2)."""


def _now() -> float:
    return time.time()


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def describe(holder: dict[str, Any]) -> str:
    """'host H, pid P, started YYYY-mm-dd HH:MM:SS UTC' for a lock's contents."""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder.get("start_time", 0))))
    return f"host {holder.get('host')}, pid {holder.get('pid')}, started {started}"


def stale_reason(holder: dict[str, Any], host: str, now: float) -> str | None:
    """Why the lock `holder` may be taken over ('pid N is not running', 'lease not renewed ...'), or None."""
    renewed = float(holder.get("renewed", holder.get("start_time", 0)))
    if holder.get("host") == host and isinstance(holder.get("pid"), int):
        return None if _pid_alive(holder["pid"]) else f"pid {holder['pid']} is not running on {host}"
    if now - renewed > LEASE_S:
        return f"its lease was not renewed for {now - renewed:.0f} s (> {LEASE_S:.0f} s)"
    return None


class RunLock:
    """The lock of one model_dir, held from `acquire()` to `release()` (also a context manager)."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir
        self.path = fileio.join(model_dir, LOCK_FILE)
        self.host = socket.gethostname()
        self.record = {"host": self.host, "pid": os.getpid(), "start_time": _now(), "token": uuid.uuid4().hex}
        self.taken_over: str | None = None  # why a stale lock was replaced, if one was
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # Reading and writing the file ----------------------------------------------------------
    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(fileio.read_bytes(self.path).decode("utf-8") or "{}")
        except (FileNotFoundError, ValueError):
            return None
        except Exception as e:  # tf.errors.NotFoundError on remote paths
            if type(e).__name__ == "NotFoundError":
                return None
            raise

    def _payload(self) -> bytes:
        return json.dumps({**self.record, "renewed": _now()}, sort_keys=True).encode("utf-8")

    def _create(self) -> bool:
        """Create the lock file if none exists: O_EXCL locally; write-then-read-back on object stores."""
        if fileio.is_remote(self.path):
            if fileio.exists(self.path):
                return False
            fileio.write_bytes_atomic(self.path, self._payload())
            return (self._read() or {}).get("token") == self.record["token"]
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._payload())
        return True

    # The public interface -----------------------------------------------------------------
    def acquire(self) -> RunLock:
        """Take the lock (replacing a stale one) or raise RunLocked naming the holder."""
        for _ in range(3):  # a concurrent release or takeover between our reads: look again
            if self._create():
                self._start_renewing()
                return self
            holder = self._read()
            if holder is None:
                continue
            if holder.get("token") == self.record["token"]:
                self._start_renewing()
                return self
            reason = stale_reason(holder, self.host, _now())
            if reason is None:
                raise RunLocked(
                    f"--model_dir={self.model_dir!r} is in use by another run ({describe(holder)}; lock file "
                    f"{self.path}); wait for it to end, stop it, or choose another --model_dir")
            self.taken_over = f"took over the lock of {describe(holder)}: {reason}"
            self._remove_if(holder)
        raise RunLocked(f"--model_dir={self.model_dir!r}: could not take its lock file {self.path} "
                        f"(other runs keep replacing it); start one run per --model_dir")

    def _remove_if(self, holder: dict[str, Any]) -> None:
        """Delete the lock file if it still holds `holder` (not a successor's fresh lock)."""
        current = self._read()
        if current is not None and current.get("token") == holder.get("token"):
            try:
                fileio.remove(self.path)
            except Exception:  # another successor removed it first
                pass

    def renew(self) -> None:
        """Rewrite the lease time (only while the file is still ours)."""
        if (self._read() or {}).get("token") == self.record["token"]:
            fileio.write_bytes_atomic(self.path, self._payload())

    def _start_renewing(self) -> None:
        def loop() -> None:
            while not self._stop.wait(RENEW_S):
                try:
                    self.renew()
                except Exception:  # a transient storage error: the next renewal retries
                    pass

        self._renewer = threading.Thread(target=loop, name="run-lock-renewal", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and delete the lock file if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        self._remove_if(self.record)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
