"""LiteRT metadata for exported `.tflite` files, so MediaPipe's ImageClassifier and the Task Library load them.

The metadata is a `ModelMetadata` flatbuffer (file identifier "M001", the TFLite metadata schema,
mediapipe/tasks/metadata/metadata_schema.fbs) stored in a model buffer named "TFLITE_METADATA",
plus the label file appended to the model as an uncompressed zip, which is how the metadata
populators of MediaPipe and tflite-support package associated files. We write it ourselves with the
`flatbuffers` runtime TensorFlow already installs: MediaPipe's writer needs absl-py 2 (our
tensorflow-model-optimization pin needs absl-py 1) and tflite-support needs protobuf 3.

Input: RGB image, `NormalizationOptions` mean 0 / std 1 (the model normalises internally, so it
takes 0-255 pixels as they are); uint8/int8 inputs carry their own quantisation parameters.
Output: probabilities with the label file as `TENSOR_AXIS_LABELS`.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import flatbuffers
import numpy as np
from flatbuffers import table as fb_table

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
MIN_PARSER_VERSION = "1.0.0"  # we use no field added after the schema's 1.0.0
LABELS_FILE = "labels.txt"

# Enum and union values of the metadata schema.
_RGB = 1
_TENSOR_AXIS_LABELS = 2
_IMAGE_PROPERTIES = 2  # ContentProperties union: FeatureProperties=1, ImageProperties=2
_FEATURE_PROPERTIES = 1
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union


@dataclass(frozen=True)
class ImageClassifierInfo:
    """What the metadata says about one exported classifier."""

    name: str
    description: str
    image_size: int
    labels: tuple[str, ...]
    version: str = "1"
    author: str = "keras-regnet"
    license: str = "Apache-2.0 (code); weights: their source's licence"


def classifier_info(model_name: str, fmt: str, image_size: int, classes: int, names: list[str] | None,
                    crop: str) -> ImageClassifierInfo:
    """The metadata of one export variant; class ids stand in for names when there are none."""
    labels = tuple(names) if names is not None else tuple(str(i) for i in range(classes))
    return ImageClassifierInfo(
        name=f"{model_name} ({fmt})",
        description=f"RegNet image classifier {model_name}, {fmt} TFLite export by keras-regnet: RGB "
                    f"{image_size}x{image_size} pixels 0-255 in (normalised inside the model), {classes} class "
                    f"probabilities out. Evaluated on {crop}.",
        image_size=image_size, labels=labels)


def populate(model: bytes, info: ImageClassifierInfo) -> bytes:
    """`model` with the classifier's metadata and its label file attached."""
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    kept = [m for m in (tree.metadata or []) if _text(m.name) != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata_flatbuffer(info), dtype=np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(tree.buffers) - 1
    tree.metadata = kept + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    return bytes(builder.Output()) + _zip({LABELS_FILE: "\n".join(info.labels) + "\n"})


def metadata_flatbuffer(info: ImageClassifierInfo) -> bytes:
    """The ModelMetadata flatbuffer of an image classifier (one subgraph, one input, one output)."""
    b = flatbuffers.Builder(1024)
    image = _table(b, [(0, "u8", _RGB), (1, "off", _table(b, [(0, "u32", info.image_size),
                                                               (1, "u32", info.image_size)]))])
    norm = _table(b, [(0, "off", _floats(b, [0.0])), (1, "off", _floats(b, [1.0]))])
    unit = _table(b, [(0, "u8", _NORMALIZATION_OPTIONS), (1, "off", norm)])
    stats = _table(b, [(0, "off", _floats(b, [255.0])), (1, "off", _floats(b, [0.0]))])
    image_tensor = _table(b, [
        (0, "off", b.CreateString("image")),
        (1, "off", b.CreateString(f"RGB image, {info.image_size}x{info.image_size}, pixel values 0-255 "
                                  "(the model normalises them itself)")),
        (3, "off", _table(b, [(0, "u8", _IMAGE_PROPERTIES), (1, "off", image)])),
        (4, "off", _vector(b, [unit])), (5, "off", stats)])
    labels = _table(b, [(0, "off", b.CreateString(LABELS_FILE)),
                        (1, "off", b.CreateString("Class names, one a line, in output order.")),
                        (2, "u8", _TENSOR_AXIS_LABELS)])
    feature = _table(b, [])
    score_tensor = _table(b, [
        (0, "off", b.CreateString("probability")),
        (1, "off", b.CreateString(f"Probabilities of the {len(info.labels)} classes.")),
        (3, "off", _table(b, [(0, "u8", _FEATURE_PROPERTIES), (1, "off", feature)])),
        (5, "off", _table(b, [(0, "off", _floats(b, [1.0])), (1, "off", _floats(b, [0.0]))])),
        (6, "off", _vector(b, [labels]))])
    subgraph = _table(b, [(2, "off", _vector(b, [image_tensor])), (3, "off", _vector(b, [score_tensor]))])
    root = _table(b, [
        (0, "off", b.CreateString(info.name)), (1, "off", b.CreateString(info.description)),
        (2, "off", b.CreateString(info.version)), (3, "off", _vector(b, [subgraph])),
        (4, "off", b.CreateString(info.author)), (5, "off", b.CreateString(info.license)),
        (7, "off", b.CreateString(MIN_PARSER_VERSION))])
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def read_metadata(model: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a .tflite file, or None when it has none."""
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if _text(entry.Name()) == METADATA_NAME:
            return root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def associated_files(model: bytes) -> dict[str, bytes]:
    """The files zipped onto the end of a .tflite file ({} when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def describe(model: bytes) -> dict[str, object] | None:
    """What a .tflite file's metadata says (name, description, versions, input size, normalisation,
    labels); None when it has no metadata. Reads the flatbuffer field by field, schema slot numbers."""
    metadata = read_metadata(model)
    if metadata is None:
        return None
    buf = bytearray(metadata)
    root = fb_table.Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    subgraph = _tables(root, 3)[0]
    image_tensor, score_tensor = _tables(subgraph, 2)[0], _tables(subgraph, 3)[0]
    image = _child(_child(image_tensor, 3), 1)
    size = _child(image, 1)
    norm = _child(_tables(image_tensor, 4)[0], 1)
    labels = [_string(f, 0) for f in _tables(score_tensor, 6)]
    files = associated_files(model)
    return {
        "name": _string(root, 0), "description": _string(root, 1), "version": _string(root, 2),
        "min_parser_version": _string(root, 7),
        "image_size": (_scalar(size, 0, flatbuffers.number_types.Uint32Flags),
                       _scalar(size, 1, flatbuffers.number_types.Uint32Flags)),
        "mean": _float_vector(norm, 0), "std": _float_vector(norm, 1),
        "label_file": labels[0] if labels else None,
        "labels": files[labels[0]].decode("utf-8").splitlines() if labels and labels[0] in files else None,
    }


def _field(t: fb_table.Table, slot: int) -> int:
    return t.Offset(4 + 2 * slot)


def _child(t: fb_table.Table, slot: int) -> fb_table.Table:
    return fb_table.Table(t.Bytes, t.Indirect(t.Pos + _field(t, slot)))


def _tables(t: fb_table.Table, slot: int) -> list[fb_table.Table]:
    offset = _field(t, slot)
    if not offset:
        return []
    start = t.Vector(offset)
    return [fb_table.Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(t.VectorLen(offset))]


def _string(t: fb_table.Table, slot: int) -> str:
    offset = _field(t, slot)
    return t.String(t.Pos + offset).decode("utf-8") if offset else ""


def _scalar(t: fb_table.Table, slot: int, flags: object) -> int:
    offset = _field(t, slot)
    return t.Get(flags, t.Pos + offset) if offset else 0


def _float_vector(t: fb_table.Table, slot: int) -> list[float]:
    offset = _field(t, slot)
    return t.GetVectorAsNumpy(flatbuffers.number_types.Float32Flags, offset).tolist() if offset else []


def _table(b: flatbuffers.Builder, fields: list[tuple[int, str, object]]) -> int:
    """A table from (slot, kind, value) fields; kinds: u8, u32 (scalars) and off (a child offset)."""
    b.StartObject(1 + max((slot for slot, _, _ in fields), default=-1))
    for slot, kind, value in fields:
        if kind == "u8":
            b.PrependUint8Slot(slot, int(value), 0)
        elif kind == "u32":
            b.PrependUint32Slot(slot, int(value), 0)
        else:
            b.PrependUOffsetTRelativeSlot(slot, int(value), 0)
    return b.EndObject()


def _vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats(b: flatbuffers.Builder, values: list[float]) -> int:
    b.StartVector(4, len(values), 4)
    for value in reversed(values):
        b.PrependFloat32(value)
    return b.EndVector()


def _zip(files: dict[str, str]) -> bytes:
    """An uncompressed zip of text files (the metadata populators' associated-file packaging)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, text in files.items():
            archive.writestr(name, text.encode("utf-8"))
    return out.getvalue()


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")
