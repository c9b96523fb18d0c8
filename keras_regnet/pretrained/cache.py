"""Download once, convert once, reuse: the Keras arrays of any row of the presets table.

`weights="imagenet"` is each zoo model's pycls_in1k row (`keras_regnet.presets`); every
other row loads the same way. The file is downloaded once into the Keras cache (atomic, SHA-256
checked where the row records the hash), converted once (numpy only, no model built) to arrays keyed
by Keras layer name, cached beside it as `<stem>.layers.npz`, and reused on every later call. The
loader (keras_regnet.pretrained.load) assigns them to the model it is handed, so the first load
builds one model: the caller's.
"""

from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from keras_regnet.errors import WeightsError
from keras_regnet.pretrained import download as dl
from keras_regnet.pretrained.to_keras import convert_state_dict
from keras_regnet.presets import Preset
from keras_regnet.pretrained.state_dict import read_state_dict
from keras_regnet.pretrained.tags import default_preset
from keras_regnet.zoo import get_entry


def cache_stem(preset: Preset) -> str:
    """File stem of a row's files in the cache, e.g. 'keras_regnet_regnety_1_6gf_pycls_in1k'."""
    return f"keras_regnet_{get_entry(preset.arch).name.replace('.', '_')}_{preset.tag}"


def cached_paths(preset: Preset) -> tuple[str, str]:
    """(downloaded .safetensors, converted arrays .layers.npz) paths in the Keras cache."""
    folder = dl.keras_cache_dir("models")
    stem = cache_stem(preset)
    return os.path.join(folder, f"{stem}.safetensors"), os.path.join(folder, f"{stem}.layers.npz")


def imagenet_arrays(model: str, *, progress: bool = True) -> dict[str, list[np.ndarray]]:
    """Keras weight arrays by layer name of zoo `model`'s reference weights (with its 1000-class head)."""
    return preset_arrays(default_preset(model), progress=progress)


def preset_arrays(preset: Preset, *, progress: bool = True) -> dict[str, list[np.ndarray]]:
    """Keras weight arrays by layer name of one presets row (with its head), from the cache;
    downloaded and converted on first use."""
    model = get_entry(preset.arch).name
    raw, converted = cached_paths(preset)
    if os.path.isfile(converted):
        return read_layer_arrays(converted)
    downloaded = False
    if os.path.isfile(raw):
        _check_existing(preset, raw)
    else:
        url = preset.url()
        report = dl.print_progress(f"Downloading {url}") if progress else None
        dl.download(url, raw, preset.sha256, hint=_manual_hint(preset), progress=report)
        downloaded = True
    try:
        arrays = convert_state_dict(read_state_dict(raw), get_entry(model).spec(),
                                    naming="timm", bgr_to_rgb=False, source=raw)
    except ValueError as err:
        raise WeightsError(
            f"the weights file {raw} does not hold {model} from {preset.hf_repo} ({err}); "
            "delete it to download it again"
        ) from err
    write_layer_arrays(arrays, converted)
    if downloaded:
        os.remove(raw)  # the converted file replaces it; a file the user placed is left alone
    return arrays


_SEP = ":"  # "<layer name>:<weight index>", e.g. "s1_b1_bn_a:2" (moving mean)


def write_layer_arrays(arrays: dict[str, list[np.ndarray]], path: str) -> str:
    """Save arrays by layer name as an uncompressed .npz, atomically (temp file + rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    flat = {f"{name}{_SEP}{i}": np.asarray(v) for name, values in arrays.items()
            for i, v in enumerate(values)}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **flat)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_layer_arrays(path: str) -> dict[str, list[np.ndarray]]:
    """Arrays by layer name written by write_layer_arrays (no pickle); unreadable -> ValueError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise WeightsError(f"cached weights {path} are unreadable ({err}); delete the file") from err
    indexed: dict[str, dict[int, np.ndarray]] = {}
    for key, value in flat.items():
        name, _, index = key.rpartition(_SEP)
        if not name or not index.isdigit():
            raise WeightsError(f"cached weights {path} hold an unexpected entry {key!r}; delete the file")
        indexed.setdefault(name, {})[int(index)] = value
    return {name: [values[i] for i in sorted(values)] for name, values in indexed.items()}


def _check_existing(preset: Preset, raw: str) -> None:
    """A file already in the cache (e.g. placed by hand) must match the recorded hash, if any."""
    if preset.sha256 and dl.sha256_of(raw) != preset.sha256:
        raise dl.WeightsDownloadError(
            f"{raw} does not have the SHA-256 of {preset.url()} ({preset.sha256}); delete it or "
            f"replace it with that file"
        )


def _manual_hint(preset: Preset) -> str:
    origin = (f" The original checkpoint {preset.origin_url} also works as weights=<path> when torch is installed."
              if preset.origin_url else "")
    return (
        f"or pass weights='/path/to/{preset.filename}' (any copy of {preset.hf_repo}) to the model builder "
        f"(--weights=/path/to/{preset.filename} on the CLIs).{origin}"
    )
