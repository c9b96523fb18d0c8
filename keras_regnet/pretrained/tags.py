"""timm's tagged names (`regnety_006.pycls_in1k`, also `hf://timm/...`) -> rows of the presets table.

Every question about a named weight goes through here: which zoo model and row a tagged name means
(`resolve_tagged`), whether a `weights=` argument names a row (`canonical_weights`, `preset_named`),
and the eval settings of a model or weight (`eval_settings`). Each reads `presets.PRESETS` when it
is called, so a row added to the table is found by all of them.

Pure Python: no TensorFlow, no numpy.
"""

from __future__ import annotations

import dataclasses
import os
import re

from keras_regnet.errors import ConfigError, WeightsError
from keras_regnet.presets import DEFAULT, DEFAULT_TAG, PRESETS, EvalSettings, Preset
from keras_regnet.spec import NetSpec
from keras_regnet.zoo import ZOO, ZooEntry, get_entry

IMAGENET = "imagenet"  # keras.applications' name for the default pretrained weights
HUB_PREFIXES = ("hf://timm/", "hf-hub:timm/", "timm/")  # how the Hub and timm write a repo id

_TAGGED = re.compile(r"^(?P<arch>[A-Za-z0-9_.\-]+?)\.(?P<tag>[a-z][a-z0-9_]*_[a-z0-9_]+)$")
_BARE_TAGGED = re.compile(r"^(?P<arch>[A-Za-z0-9_.\-]+?)\.(?P<tag>[a-z]+)$")  # one-word tags: 'seer'


def tagged_name(entry: ZooEntry, tag: str = DEFAULT_TAG) -> str:
    """timm's tagged name of a zoo model's weights, e.g. 'regnety_006.pycls_in1k'."""
    return f"{entry.timm_name}.{tag}"


def tags() -> tuple[str, ...]:
    """Every tag in the presets table, sorted (e.g. ('pycls_in1k',))."""
    return tuple(sorted({preset.tag for preset in PRESETS.values()}))


def presets_of(entry: ZooEntry) -> list[Preset]:
    """The rows whose architecture is zoo model `entry` (written in any zoo spelling), in table order."""
    return [preset for preset in PRESETS.values() if _entry_name(preset.arch) == entry.name]


def default_preset(model: str) -> Preset:
    """The row `weights="imagenet"` loads for zoo `model` (any spelling): its pycls_in1k weights."""
    entry = get_entry(model)
    for preset in presets_of(entry):
        if preset.tag == DEFAULT_TAG:
            return preset
    raise WeightsError(f"no {DEFAULT_TAG} weights for {entry.display_name} ({model!r}) in the presets table")


def split_tagged(name: str) -> tuple[str, str] | None:
    """('regnety_006', 'pycls_in1k') for 'regnety_006.pycls_in1k' (also 'hf://timm/...'); None for
    names without a tag ('regnety_1.6gf' has a dot but no tag)."""
    text = name.strip()
    for prefix in HUB_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
    match = _TAGGED.match(text) or _BARE_TAGGED.match(text)
    if match is None or ("_" not in match["tag"] and match["tag"] not in tags()):
        return None  # a one-word suffix is a tag only when the table has it ("seer"), not "net.json"
    return match["arch"], match["tag"]


def resolve_tagged(name: str, label: str = "model") -> tuple[ZooEntry, Preset] | None:
    """(zoo entry, presets row) of a tagged name; None when `name` carries no tag.

    A zoo architecture with a tag we do not hold, or a tag on an unknown architecture, is a
    ConfigError that lists the tagged names we have.
    """
    parts = split_tagged(name)
    if parts is None:
        return None
    arch, tag = parts
    try:
        entry = get_entry(arch)
    except ValueError as err:
        raise ConfigError(f"{label}={name!r}: {arch!r} is not a zoo model; tagged names we have: "
                          f"{_examples()}") from err
    rows = presets_of(entry)
    for preset in rows:
        if preset.tag == tag:
            return entry, preset
    held = [preset.tag for preset in rows]
    have = (f"tags we have: {', '.join(held)} (e.g. {tagged_name(entry, held[0])})" if held
            else "the presets table has no weights for it")
    raise ConfigError(f"{label}={name!r}: no weights tagged {tag!r} for {entry.timm_name}; {have}")


def preset_named(weights: object) -> Preset | None:
    """The row a `weights=` string names as a tagged name; None for anything else (paths included)."""
    if not isinstance(weights, str) or os.path.exists(weights) or split_tagged(weights) is None:
        return None
    try:
        found = resolve_tagged(weights, "weights")
    except ConfigError:
        return None
    return None if found is None else found[1]


def canonical_weights(weights: object, spec: NetSpec) -> object:
    """'imagenet' for a weight tag naming `spec`'s zoo weights ('pycls_in1k', 'regnety_006.pycls_in1k',
    'hf://timm/regnety_006.pycls_in1k'); the row's tagged name for another row of the presets table;
    anything else is returned unchanged."""
    if not isinstance(weights, str) or weights == IMAGENET or os.path.exists(weights):
        return weights
    if weights == DEFAULT_TAG:
        return IMAGENET
    if weights in tags():  # a bare tag: that row of `spec`'s zoo model
        entry = zoo_entry_for(spec, weights)
        for preset in presets_of(entry):
            if preset.tag == weights:
                return preset.name
        raise WeightsError(f"weights={weights!r}: no weights tagged {weights!r} for {entry.display_name}; "
                           f"tags it has: {', '.join(p.tag for p in presets_of(entry)) or 'none'}")
    try:
        found = resolve_tagged(weights, "weights")
    except ConfigError as err:
        raise WeightsError(str(err)) from err
    if found is None:
        return weights
    entry, preset = found
    if not _same_architecture(entry.spec(), spec):
        raise WeightsError(f"weights={weights!r} are {entry.display_name}'s, but the model is "
                           f"{spec.name!r}, another network; use weights='imagenet' or its own tagged name")
    return IMAGENET if preset.tag == DEFAULT_TAG else preset.name


def zoo_entry_for(spec: NetSpec, weights: str = IMAGENET) -> ZooEntry:
    """The zoo model whose architecture equals `spec` (its name may differ); else WeightsError."""
    entry = ZOO.get(spec.name)
    if entry is not None and _same_architecture(entry.spec(), spec):
        return entry
    for entry in ZOO.values():
        if _same_architecture(entry.spec(), spec):
            return entry
    raise WeightsError(
        f"weights={weights!r} exists only for the {_zoo_count(weights)}; the "
        f"network {spec.name!r} is none of them. Pass weights=None or a path to a weights file."
    )


def _zoo_count(weights: str) -> str:
    """Which zoo models a weights name can exist for: pycls's 24 for "imagenet", else the whole zoo."""
    if weights == IMAGENET:
        return f"{sum(not e.beyond_paper for e in ZOO.values())} zoo models of the paper " \
               "(keras_regnet.list_models(beyond_paper=False))"
    return f"{len(ZOO)} zoo models (keras_regnet.list_models())"


def eval_settings(model: object = None, weights: object = None) -> EvalSettings:
    """The eval settings of tagged `weights` (or a bare tag of zoo `model`), else of zoo `model`'s weights
    (any spelling or tagged name); the pycls default otherwise (our own trained models are evaluated as the reference)."""
    if isinstance(weights, str) and not os.path.exists(weights) and split_tagged(weights):
        model = weights
    elif isinstance(weights, str) and weights in tags() and isinstance(model, str):
        try:  # a bare tag ("swag_ft_in1k") of zoo `model`
            entry = resolve_tagged(model)[0] if split_tagged(model) else get_entry(model)
            model = tagged_name(entry, weights)
        except ValueError:
            pass  # not a zoo model: the build says what is wrong with the pair
    if not isinstance(model, str):
        return DEFAULT
    found = resolve_tagged(model)
    if found is not None:
        return found[1].settings
    try:
        return default_preset(model).settings
    except ValueError:
        return DEFAULT


def _same_architecture(a: NetSpec, b: NetSpec) -> bool:
    return dataclasses.replace(a, name="_") == dataclasses.replace(b, name="_")


def _entry_name(arch: str) -> str | None:
    """The canonical zoo name of a row's architecture; None when the zoo has no such model."""
    try:
        return get_entry(arch).name
    except ValueError:
        return None


def _examples() -> str:
    names = list(PRESETS)
    return f"{', '.join(names[:3])}, ... ({len(names)} in all)"
