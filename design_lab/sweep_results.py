"""Crash-safe results of a sweep: an append-only JSONL file (whole files: fileio.write_text_atomic).

Every finished model becomes exactly one line. Appends hold an exclusive lock, check that the
model is not recorded yet, write the whole line with one `write`, and fsync before releasing, so
shards on one machine (or a shared file system with working locks) never duplicate a line, and a
crash can at worst leave a torn last line, which is cut off before the next append and ignored
when reading.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any, Iterator

from keras_regnet.errors import DataError


def _parse_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """Complete lines only (a torn last line without its newline is skipped)."""
    for raw in data.split(b"\n")[:-1]:
        if raw.strip():
            yield json.loads(raw)


class ResultsFile:
    """One JSON object per line, keyed by an integer field (`key`, default "index")."""

    def __init__(self, path: str, key: str = "index") -> None:
        self.path = path
        self.key = key

    def load(self) -> list[dict[str, Any]]:
        """All complete records, first occurrence per key, in file order."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        seen: set[int] = set()
        out = []
        for rec in _parse_lines(data):
            k = int(rec[self.key])
            if k not in seen:
                seen.add(k)
                out.append(rec)
        return out

    def done(self) -> set[int]:
        """Keys of the records already written."""
        return {int(r[self.key]) for r in self.load()}

    def append(self, record: dict[str, Any]) -> bool:
        """Append one record unless its key is present; returns whether a line was written."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        if b"\n" in line[:-1]:
            raise DataError("a results record must serialize to a single line")
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = _read_all(fd)
            if data and not data.endswith(b"\n"):  # torn tail from a crash: cut it off
                os.ftruncate(fd, data.rfind(b"\n") + 1)
                data = data[: data.rfind(b"\n") + 1]
            if int(record[self.key]) in {int(r[self.key]) for r in _parse_lines(data)}:
                return False
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
