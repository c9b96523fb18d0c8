"""A failed write of a run's files is one line: which file, why, and for a full disk the bytes it needed.

`guarded_write` wraps the writes a run cannot go on without (checkpoints, metrics.json, model.keras):
an OSError or a TensorFlow write error (ResourceExhaustedError from SaveV2, PermissionDeniedError,
...) becomes `WriteFailed`, after `cleanup` removed the write's temporary files; the previous
checkpoint is untouched, since every write goes to a temporary name first. training.main prints the
line and exits with WRITE_FAILED_EXIT_CODE. Backend-free: TensorFlow errors are recognised by name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from typing import Callable

from keras_regnet import fileio

WRITE_FAILED_EXIT_CODE = 4
_TF_WRITE_ERRORS = ("ResourceExhaustedError", "PermissionDeniedError", "FailedPreconditionError",
                    "UnavailableError", "InternalError", "UnknownError", "NotFoundError", "AbortedError")


class WriteFailed(RuntimeError):
    """Writing one of the run's files failed; the message is one line naming the path."""


def _free_bytes(path: str) -> int | None:
    """Free bytes on the local filesystem holding `path` (None for remote paths)."""
    if fileio.is_remote(path):
        return None
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _reason(error: BaseException) -> tuple[str, bool]:
    """(a short reason, whether the disk is full) of a write error."""
    text = getattr(error, "message", None) or str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or "No space left" in text \
            or type(error).__name__ == "ResourceExhaustedError":
        return "no space left on device", True
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower(), False
    return (text.strip().splitlines() or [type(error).__name__])[-1].strip()[:200], False


def describe_failure(what: str, path: str, error: BaseException, needed_bytes: int | None,
                     kept: str | None = None) -> str:
    """'could not write <what> <path>: <reason> (...bytes...); <what stays valid>' in one line."""
    reason, full = _reason(error)
    if full and needed_bytes is not None:
        free = _free_bytes(path)
        reason += f" (it needed about {needed_bytes:,} bytes" + (f"; {free:,} free)" if free is not None else ")")
    kept_text = f"; the previous checkpoint {kept} stays valid" if kept else ""
    fix = "free space or choose another --model_dir" if full else "check the permissions and storage of --model_dir"
    return f"could not write {what} {path}: {reason}{kept_text}; {fix}, then rerun the command to resume"


def _is_write_error(error: BaseException) -> bool:
    return isinstance(error, OSError) or type(error).__name__ in _TF_WRITE_ERRORS


@contextlib.contextmanager
def guarded_write(what: str, path: str, needed_bytes: int | Callable[[], int] | None = None,
                  cleanup: Callable[[], None] | None = None, kept: str | None = None) -> Iterator[None]:
    """Run the write inside; on a write error, `cleanup()` and raise WriteFailed (one line)."""
    try:
        yield
    except Exception as e:
        if not _is_write_error(e):
            raise
        if cleanup is not None:
            with contextlib.suppress(Exception):
                cleanup()
        needed = needed_bytes() if callable(needed_bytes) else needed_bytes
        raise WriteFailed(describe_failure(what, path, e, needed, kept)) from e
