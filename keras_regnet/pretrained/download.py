"""Atomic, integrity-checked downloads into the Keras cache (`$KERAS_HOME/models`, default
`~/.keras/models`), with one clear error for every way a download can fail."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from typing import Callable

from keras_regnet.errors import WeightsError

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class WeightsDownloadError(WeightsError):
    """A pretrained-weights file could not be fetched or failed its integrity check."""


def keras_cache_dir(subdir: str = "models") -> str:
    """`$KERAS_HOME/<subdir>` if KERAS_HOME is set, else `~/.keras/<subdir>` (as keras.utils.get_file)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, subdir)


def sha256_of(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str, sha256: str | None = None, *, hint: str = "",
             progress: Callable[[int, int | None], None] | None = None,
             timeout: float = _TIMEOUT_S) -> str:
    """Fetch `url` to `dest` through a temp file in the same folder, renamed only when complete
    and (if `sha256` is given) verified. Any failure raises WeightsDownloadError saying what to
    fetch by hand and where to put it; `hint` is appended (e.g. the weights=<path> alternative).
    """
    folder = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise _error(url, dest, f"cannot create the cache folder {folder!r} ({err})", hint) from err
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            _copy(url, out, digest, progress, timeout, dest, hint)
        if sha256 and digest.hexdigest() != sha256.lower():
            raise _error(url, dest, f"SHA-256 mismatch: got {digest.hexdigest()}, expected {sha256}", hint)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _copy(url: str, out, digest, progress, timeout: float, dest: str, hint: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done = 0
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            if total is not None and done != total:
                raise _error(url, dest, f"connection closed after {done} of {total} bytes", hint)
    except (urllib.error.URLError, OSError, ValueError) as err:
        if isinstance(err, WeightsDownloadError):
            raise
        reason = getattr(err, "reason", None) or err
        raise _error(url, dest, f"download failed ({reason})", hint) from err


def _error(url: str, dest: str, what: str, hint: str) -> WeightsDownloadError:
    message = f"{what}. Download {url} yourself and save it as {dest}"
    return WeightsDownloadError(f"{message}{'; ' + hint if hint else ''}")


def print_progress(label: str) -> Callable[[int, int | None], None]:
    """A progress callback printing `label: 12.0/40.5 MB` at most once per 10% (or per 10 MB)."""
    state = {"next": 0}

    def report(done: int, total: int | None) -> None:
        step = total // 10 if total else 10 * _CHUNK
        if done >= state["next"] or (total and done == total):
            state["next"] = done + max(step, _CHUNK)
            size = f"/{total / 1e6:.1f}" if total else ""
            print(f"{label}: {done / 1e6:.1f}{size} MB", flush=True)

    return report
