"""absl flags generated from a frozen config dataclass, and the dataclass rebuilt from parsed flags.

Each config value is declared once, on its dataclass field: the default is the field's default and
the help text, choices and bounds live in its metadata (`flag_field` writes both):

    epochs: int | None = flag_field(None, "Training epochs.", lower_bound=1)

Metadata keys: `help` (required), `choices` (an enum flag; for int fields an integer flag with a
validator), `lower_bound` / `upper_bound` (numeric flags), `required` (the flag must be given).
A dataclass built from group dataclasses whose class attribute `flag_group` names the group (TrainConfig's
data/recipe/runtime/output) has its flags listed under that group in --helpfull ("training recipe:").
Field types: str, int, float, bool, `X | None`, and `tuple[str, ...]` / `list[str]` (comma-separated
list flags). Flag name = field name. A CLI calls `define_flags(Config)` when it runs (not at import),
so two CLIs whose flags share a name but not a default can be imported into one process.
Imports absl only (no TensorFlow), so a CLI's --helpfull stays fast.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from absl import flags

from keras_regnet.errors import ConfigError

# DEFINE_* calls made here are attributed to the module that called define_flags (the CLI), so
# `--help` lists a CLI's own flags as its key flags.
flags.disclaim_key_flags()

T = TypeVar("T")

_NUMERIC = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
_PLAIN = {str: flags.DEFINE_string, bool: flags.DEFINE_bool}


def field_types(cls: type) -> dict[str, tuple[type, type | None]]:
    """name -> (base type, tuple or list for a list flag else None) per field, `X | None` unwrapped."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                raise ConfigError(f"{cls.__name__}.{f.name}: cannot make a flag of the union {tp}")
            tp = args[0]
        if typing.get_origin(tp) in (tuple, list):
            out[f.name] = (str, typing.get_origin(tp))
        elif tp in _NUMERIC or tp in _PLAIN:
            out[f.name] = (tp, None)
        else:
            raise ConfigError(f"{cls.__name__}.{f.name}: cannot make a flag of type {tp}")
    return out


def field_default(f: dataclasses.Field) -> Any:
    """The field's default as the flag holds it (a tuple default becomes a list)."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        raise ConfigError(f"field {f.name!r} has no default; every flag needs one")
    return list(value) if isinstance(value, (tuple, list)) else value


def field_help(cls: type, f: dataclasses.Field) -> str:
    """The field's help text; a field without one is a ConfigError (every flag is documented)."""
    text = f.metadata.get("help")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{cls.__name__}.{f.name} has no metadata['help']; document the field")
    return text


def define_flags(cls: type, flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """Define one absl flag per field of `cls` in `flag_values`; returns the flag names.

    Idempotent: a flag already defined with the same default and help is kept. One defined
    differently (another CLI's flag of the same name) is a ConfigError naming it.
    """
    types_ = field_types(cls)
    plan = [(f, field_default(f), field_help(cls, f)) for f in dataclasses.fields(cls)]
    for f, default, help_ in plan:  # check every name first, so a collision defines nothing
        if f.name in flag_values:
            _check_same(flag_values[f.name], f.name, default, help_)
    for f, default, help_ in plan:
        if f.name not in flag_values:
            _define(f, types_[f.name], default, help_, flag_values, flag_group_label(cls, f.name))
    return [f.name for f, _, _ in plan]


def flag_group_label(cls: type, name: str) -> str | None:
    """'<package> <group>' for a field declared on a class with a `flag_group` (the --helpfull heading), else None."""
    for klass in cls.__mro__:
        if name in klass.__dict__.get("__annotations__", {}):
            group = klass.__dict__.get("flag_group")
            return f"{klass.__module__.split('.')[0]} {group}" if group else None
    return None


def _check_same(flag: flags.Flag, name: str, default: Any, help_: str) -> None:
    """Raise ConfigError unless an existing flag is the one this field would define."""
    if flag.default != default or not flag.help.endswith(help_):  # enum flags prefix "<a|b>: "
        raise ConfigError(f"--{name} is already defined differently (default {flag.default!r}, help "
                          f"{flag.help!r}; this field: default {default!r}); each CLI defines its flags when "
                          "it runs, in its own process or FlagValues")


def _define(f: dataclasses.Field, kind: tuple[type, type | None], default: Any, help_: str,
            flag_values: flags.FlagValues, group: str | None = None) -> None:
    """One DEFINE_* call for field `f` (listed under `group` in --helpfull when given)."""
    tp, container = kind
    meta = f.metadata
    common = {"flag_values": flag_values, "required": bool(meta.get("required", False))}
    if group:
        common["module_name"] = group
    choices = meta.get("choices")
    bounds = {k: meta[k] for k in ("lower_bound", "upper_bound") if k in meta}
    if container is not None:
        flags.DEFINE_list(f.name, default, help_, **common)
    elif choices is not None and tp is str:
        flags.DEFINE_enum(f.name, default, [str(c) for c in choices], help_, **common)
    elif tp in _NUMERIC:
        _NUMERIC[tp](f.name, default, help_, **bounds, **common)
        if choices is not None:
            allowed = list(choices)
            flags.register_validator(f.name, lambda v: v is None or v in allowed,
                                     message=f"--{f.name} must be one of {', '.join(map(str, allowed))}",
                                     flag_values=flag_values)
    else:
        _PLAIN[tp](f.name, default, help_, **common)


def from_flags(cls: type[T], flag_values: flags.FlagValues = flags.FLAGS, **overrides: Any) -> T:
    """The `cls` instance the parsed flags describe (list flags as the field's tuple/list, empty items dropped)."""
    types_ = field_types(cls)
    values = {}
    for f in dataclasses.fields(cls):
        value = flag_values[f.name].value
        container = types_[f.name][1]
        if container is not None and value is not None:
            value = container(v for v in value if v)
        values[f.name] = value
    values.update(overrides)
    return cls(**values)


def flag_field(default: Any, help: str, **metadata: Any) -> Any:  # noqa: A002 (absl's word)
    """A dataclass field whose default, help text and flag metadata (choices, bounds) are declared once."""
    if isinstance(default, (list, dict, set)):
        raise ConfigError(f"flag_field default {default!r} is mutable; use a tuple")
    return dataclasses.field(default=default, metadata={"help": help, **metadata})
