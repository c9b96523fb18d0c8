"""One resolver for every way of naming a model: zoo names in any spelling, Keras 2 aliases, timm's
tagged names (`regnety_006.pycls_in1k`, also as `hf://timm/...`), the built-in small models, NetSpec JSON files (any case of `.json`, local or gs://-style URLs) and
inline NetSpec JSON. Every door that takes a model name goes through `resolve_model`: `complexity`,
`build`, the CLIs (training, evaluation, conversion, export, latency --zoo) and the benchmarks, so a
model that trains can also be measured, converted and exported, and a bad name is one error everywhere.
`zoo.get_entry` is the zoo table's own lookup, used here.

Pure Python: no TensorFlow unless a URL-style spec path has to be read through tf.io.gfile.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from keras_regnet.errors import ConfigError
from keras_regnet.regnet import RegNetParams
from keras_regnet.spec import NetSpec
from keras_regnet.pretrained.tags import resolve_tagged
from keras_regnet.zoo import ZooEntry, get_entry, list_models

# Small RegNets for the embedded dataset. regnety_digits comes out of the RegNet rule
# (d=6, w0=24, wa=12, wm=2, g=8, SE 0.25): stages of widths 24/48/96 and depths 1/3/2, about
# 4.3 M multiply-adds at 32x32 with stem stride 1 (the zoo stems stride 2, too coarse for 32 px).
BUILTIN: dict[str, RegNetParams] = {
    "regnety_digits": RegNetParams(depth=6, w0=24, wa=12.0, wm=2.0, group_width=8,
                                   se_ratio=0.25, stem_width=16, stem_stride=1),
    "regnetx_digits": RegNetParams(depth=6, w0=24, wa=12.0, wm=2.0, group_width=8,
                                   stem_width=16, stem_stride=1),
}


def resolve_model(model: Any, *, label: str = "model") -> tuple[NetSpec, ZooEntry | None]:
    """(NetSpec, zoo entry or None) from a NetSpec, a dict, a name, a JSON file or inline JSON.

    `label` names the argument in errors (the CLIs pass "--model").
    """
    if isinstance(model, NetSpec):
        return model.validate(), None
    if isinstance(model, Mapping):
        return _spec_from_data(dict(model), f"{label} (a dict)"), None
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{label} must be a zoo name, a built-in name, a NetSpec JSON file or "
                          f"inline NetSpec JSON; got {model!r}")
    text = model.strip()
    if text.startswith("{"):
        return _spec_from_text(text, f"{label} (inline JSON)"), None
    if text in BUILTIN:
        return BUILTIN[text].to_spec(name=text), None
    tagged = resolve_tagged(text, label)
    if tagged is not None:
        return tagged[0].spec(), tagged[0]
    if _looks_like_path(text):
        return _spec_from_file(text, label), None
    try:
        entry = get_entry(text)
    except ValueError as err:
        raise ConfigError(
            f"{label}={model!r} is unknown; use a zoo name ({', '.join(list_models())}), "
            f"timm's tagged name of one (regnety_006.pycls_in1k), a built-in ({', '.join(BUILTIN)}), a NetSpec JSON file or inline NetSpec JSON"
        ) from err
    return entry.spec(), entry


def resolve_spec(model: Any, *, label: str = "model") -> NetSpec:
    """The NetSpec of `model` (see resolve_model)."""
    return resolve_model(model, label=label)[0]


def _looks_like_path(text: str) -> bool:
    """A JSON file name in any case (Net.JSON), or anything with a path separator or URL scheme."""
    return text.lower().endswith(".json") or os.path.sep in text or "/" in text or "://" in text


def _spec_from_file(path: str, label: str) -> NetSpec:
    if not _isfile(path):
        raise ConfigError(f"{label}={path!r}: no such JSON spec file (no such NetSpec JSON file at "
                          f"{_absolute(path)!r})")
    try:
        text = _read_text(path)
    except OSError as err:
        raise ConfigError(f"{label}={path!r} is not a readable JSON file: {err}") from err
    return _spec_from_text(text, f"{label}={path!r}")


def _spec_from_text(text: str, label: str) -> NetSpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{label} is not a valid NetSpec JSON: {err}") from err
    return _spec_from_data(data, label)


def _spec_from_data(data: Any, label: str) -> NetSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{label} is not a valid NetSpec: expected a JSON object, got "
                          f"{type(data).__name__}")
    try:
        return NetSpec.from_dict(data)
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"{label} is not a valid NetSpec: {err}") from err


def _isfile(path: str) -> bool:
    if "://" in path:
        import tensorflow as tf

        return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
    return os.path.isfile(path)


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _read_text(path: str) -> str:
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "r") as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()
