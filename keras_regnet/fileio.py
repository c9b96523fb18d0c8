"""File access for data and run directories that also works on object stores (gs://, s3://, ...).

TPU training has to read its data from, and write its checkpoints to, Cloud Storage, and cluster
jobs often do the same. Local paths keep using `os` (atomic `os.replace`, the usual OSError);
paths with a URL scheme (`gs://`, `s3://`, `hdfs://`, TensorFlow's in-memory `ram://`) go through
`tf.io.gfile`. TensorFlow is imported only for such paths, so the CLIs' flag checks stay fast.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import shutil
import tempfile
import uuid
from typing import Any


def is_remote(path: str) -> bool:
    """True for a URL-style path (scheme://...), handled by tf.io.gfile."""
    return "://" in str(path)


def _gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile


def join(path: str, *parts: str) -> str:
    """os.path.join for local paths; '/'-joined for URLs (never the OS separator)."""
    if is_remote(path):
        return "/".join([path.rstrip("/"), *parts])
    return os.path.join(path, *parts)


def absolute(path: str) -> str:
    """os.path.abspath for local paths; URLs are already absolute."""
    return path if is_remote(path) else os.path.abspath(path)


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    if is_remote(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(path)


def listdir(path: str) -> list[str]:
    """Entry names of a directory (no trailing '/' on sub-directories, unlike gfile on GCS)."""
    if is_remote(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)]
    return os.listdir(path)


def glob(pattern: str) -> list[str]:
    return list(_gfile().glob(pattern)) if is_remote(pattern) else _glob.glob(pattern)


def makedirs(path: str) -> None:
    """Create a directory and its parents; no error if it exists."""
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def rmtree(path: str) -> None:
    """Remove a directory tree, ignoring a missing one."""
    if is_remote(path):
        gfile = _gfile()
        if gfile.exists(path):
            gfile.rmtree(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def read_json(path: str) -> Any:
    if is_remote(path):
        with _gfile().GFile(path, "r") as f:
            return json.loads(f.read())
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_bytes(path: str) -> bytes:
    """A whole local or remote (gs://...) file's bytes."""
    if is_remote(path):
        with _gfile().GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def remove(path: str) -> None:
    """Delete one local or remote file."""
    if is_remote(path):
        _gfile().remove(path)
    else:
        os.remove(path)


def replace(src: str, dst: str) -> None:
    """Move src over dst (atomic on local filesystems; a copy + delete on most object stores)."""
    if is_remote(dst):
        _gfile().rename(src, dst, overwrite=True)
    else:
        os.replace(src, dst)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """As `write_text_atomic` for binary contents (the JAX engine's checkpoints)."""
    write_text_atomic(path, data)


def write_text_atomic(path: str, text: str | bytes) -> None:
    """Write a whole file through a temporary file beside it, then move it over `path`.

    Readers see the old or the new file, never half of one. Locally the temporary file and the
    directory are fsynced, so the rename survives a machine crash (sweeps and runs are resumed from
    these files); unique temporary names make concurrent writers (sweep shards) safe.
    """
    if is_remote(path):
        folder = path.rsplit("/", 1)[0]
        makedirs(folder)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex}"
        with _gfile().GFile(tmp, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        replace(tmp, path)
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str, data: Any) -> None:
    """`data` as indented, key-sorted JSON, written with `write_text_atomic`."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
