"""Is a weights file what its name says? One WeightsError line naming the file and what is wrong.

Checked from the file's own bytes before Keras, h5py or LiteRT read it (their errors for a broken file
are "file signature not found", "File not found" for a file that exists, or a `struct.error`):
- `.weights.h5`: the HDF5 signature, and a file at least as long as the end-of-file address its
  superblock records (a partial download is shorter).
- `.keras`: a zip archive (a partial download has no end-of-archive record) holding config.json and
  model.weights.h5.
- `.tflite`: a TFLite flatbuffer (identifier "TFL3"), whose tables, vectors and buffers all lie inside
  the file.

Pure Python: no TensorFlow, no numpy, no h5py.
"""

from __future__ import annotations

import os
import struct
import zipfile

from keras_regnet.errors import WeightsError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_LOCAL_HEADER = b"PK\x03\x04"
TFLITE_IDENTIFIER = b"TFL3"
KERAS_ARCHIVE_MEMBERS = ("config.json", "model.weights.h5")
_HDF5_SUPERBLOCK_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)  # where HDF5 may place its superblock


def check_weights_file(path: str, label: str = "weights") -> None:
    """WeightsError unless `path` is a readable file whose content fits its suffix (.weights.h5,
    .keras, .tflite); other suffixes are left to their own readers."""
    lower = path.lower()
    if lower.endswith(".weights.h5"):
        check_hdf5(path, label)
    elif lower.endswith(".keras"):
        check_keras_archive(path, label)
    elif lower.endswith(".tflite"):
        check_tflite(path, label)


def _head(path: str, label: str, count: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(count)
    except OSError as err:
        raise WeightsError(f"{label}={path!r} cannot be read: {err.strerror or err}") from err


def check_hdf5(path: str, label: str = "weights") -> None:
    """A .weights.h5 file: the HDF5 signature, and not shorter than its superblock's end-of-file address."""
    size = os.path.getsize(path)
    head = _head(path, label, max(_HDF5_SUPERBLOCK_OFFSETS) + 64)
    start = next((o for o in _HDF5_SUPERBLOCK_OFFSETS if head[o:o + 8] == HDF5_SIGNATURE), None)
    if start is None:
        raise WeightsError(f"{label}={path!r} is not an HDF5 file (no HDF5 signature; {size} bytes); "
                           "a .weights.h5 file is written by model.save_weights")
    end = _hdf5_end_of_file(head[start:])
    if end is not None and start + end > size:
        raise WeightsError(f"{label}={path!r} is truncated: its HDF5 superblock records {start + end} bytes "
                           f"but the file has {size} (a partial download or copy?)")


def _hdf5_end_of_file(block: bytes) -> int | None:
    """The end-of-file address a superblock (versions 0-3) records, relative to it; None if unreadable."""
    if len(block) < 12:
        return None
    version = block[8]
    if version in (0, 1):
        offset_size = block[13]
        field = 24 + (4 if version == 1 else 0) + 2 * offset_size  # base, free-space, then end-of-file
    elif version in (2, 3):
        offset_size = block[9]
        field = 12 + 2 * offset_size  # base, superblock extension, then end-of-file
    else:
        return None
    if offset_size not in (2, 4, 8) or len(block) < field + offset_size:
        return None
    return int.from_bytes(block[field:field + offset_size], "little")


def check_keras_archive(path: str, label: str = "weights") -> None:
    """A .keras file: a complete zip archive holding a Keras model (config.json and model.weights.h5)."""
    size = os.path.getsize(path)
    head = _head(path, label, 4)
    if not zipfile.is_zipfile(path):
        if head == ZIP_LOCAL_HEADER:
            raise WeightsError(f"{label}={path!r} is truncated: a zip archive ({size} bytes) without its "
                               "end-of-archive record (a partial download or copy?)")
        raise WeightsError(f"{label}={path!r} is not a zip archive ({size} bytes); a .keras file is the zip "
                           "that model.save writes")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"{label}={path!r} is a damaged zip archive: {err}") from err
    missing = [name for name in KERAS_ARCHIVE_MEMBERS if name not in names]
    if missing:
        raise WeightsError(f"{label}={path!r} is a zip archive but not a Keras model: it lacks "
                           f"{', '.join(missing)}")


def check_tflite(path: str, label: str = "tflite") -> None:
    """A .tflite file: the TFL3 identifier, and every table, vector and buffer it points to inside the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise WeightsError(f"{label}={path!r} cannot be read: {err.strerror or err}") from err
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise WeightsError(f"{label}={path!r} is not a TFLite flatbuffer (no 'TFL3' identifier; "
                           f"{len(data)} bytes); pass a .tflite written by tflite.export")
    try:
        _check_model_table(data)
    except (struct.error, IndexError, _OutOfBounds) as err:
        raise WeightsError(f"{label}={path!r} is truncated or damaged: a TFLite flatbuffer of {len(data)} bytes "
                           f"whose {err} (a partial download or copy?)") from err


class _OutOfBounds(Exception):
    """A flatbuffer offset or length that points outside the file (caught in check_tflite)."""


class _Flat:
    """Bounds-checked reads of a flatbuffer; each failure is an _OutOfBounds naming what points outside."""

    def __init__(self, data: bytes):
        self.data = data

    def u32(self, at: int, what: str) -> int:
        if at < 0 or at + 4 > len(self.data):
            raise _OutOfBounds(f"{what} lies outside the file (byte {at})")
        return struct.unpack_from("<I", self.data, at)[0]

    def table_fields(self, table: int, what: str) -> list[int]:
        """Absolute positions of a table's present fields (0 for absent ones)."""
        vtable = table - struct.unpack_from("<i", self.data, table)[0] if 0 <= table <= len(self.data) - 4 else -1
        if vtable < 0 or vtable + 4 > len(self.data):
            raise _OutOfBounds(f"{what} table lies outside the file (byte {table})")
        vsize, tsize = struct.unpack_from("<HH", self.data, vtable)
        if vtable + vsize > len(self.data) or table + tsize > len(self.data):
            raise _OutOfBounds(f"{what} table lies outside the file (byte {table})")
        offsets = struct.unpack_from(f"<{(vsize - 4) // 2}H", self.data, vtable + 4)
        return [table + o if o else 0 for o in offsets]

    def follow(self, at: int, what: str) -> int:
        """The object a uoffset at `at` points to."""
        return at + self.u32(at, what)

    def vector(self, at: int, what: str, element: int) -> tuple[int, int]:
        """(first element, length) of the vector a uoffset at `at` points to, checked to fit the file."""
        start = self.follow(at, what)
        length = self.u32(start, what)
        if start + 4 + length * element > len(self.data):
            raise _OutOfBounds(f"{what} ({length} x {element} bytes at byte {start}) runs past the end")
        return start + 4, length


def _check_model_table(data: bytes) -> None:
    """The Model table (schema.fbs: version, operator_codes, subgraphs, description, buffers, ...): each
    offset field and each Buffer's data (inline, or at offset/size after the flatbuffer) fits the file."""
    flat = _Flat(data)
    model = flat.follow(0, "the root table offset")
    fields = flat.table_fields(model, "the Model")
    names = {1: "operator_codes", 2: "subgraphs", 3: "description", 4: "buffers", 5: "metadata_buffer",
             6: "metadata", 7: "signature_defs"}
    if len(fields) < 3 or not fields[2]:
        raise _OutOfBounds("Model table has no subgraphs")
    for index, name in names.items():
        if index >= len(fields) or not fields[index] or index == 5:  # metadata_buffer: a vector of ints
            continue
        element = 1 if name == "description" else 4
        first, length = flat.vector(fields[index], name, element)
        if name == "description":
            continue
        for i in range(length):  # each element is a table: it and its vtable lie inside the file
            item = flat.follow(first + 4 * i, f"{name}[{i}]")
            parts = flat.table_fields(item, f"{name}[{i}]")
            if name != "buffers":
                continue
            if parts and parts[0]:
                flat.vector(parts[0], f"buffers[{i}].data", 1)
            if len(parts) > 2 and parts[1] and parts[2]:
                offset, size = (struct.unpack_from("<Q", data, p)[0] for p in parts[1:3])
                if offset + size > len(data):
                    raise _OutOfBounds(f"buffers[{i}] ({size} bytes at byte {offset}) runs past the end")
