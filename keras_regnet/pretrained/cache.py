"""`weights="imagenet"`: the reference's own ImageNet weights for the 24 zoo models.

Source: the pycls model-zoo checkpoints (Radosavovic et al. 2020, MIT licence) as re-hosted by
timm on the Hugging Face Hub in safetensors format (`timm/<arch>.pycls_in1k`, `model.safetensors`,
no unpickling needed). timm renamed the keys to its own scheme and reversed the stem to RGB input
(stated in timm's regnet.py module docstring), so these files are converted without a BGR flip.
The original pycls `.pyth` URL of each model is kept for reference (`WeightSource.pycls_url`).

Flow: download once into the Keras cache (atomic, SHA-256 checked where the hash is recorded),
convert once (numpy only, no model built) to arrays keyed by Keras layer name, cached beside it as
`<stem>.layers.npz`, and reuse them on every later call. The loader (keras_regnet.pretrained.load) assigns
them to the model it is handed, so the first load builds one model: the caller's.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from dataclasses import dataclass

import numpy as np

from keras_regnet.pretrained import download as dl
from keras_regnet.pretrained.state_dict import read_state_dict
from keras_regnet.errors import WeightsError
from keras_regnet.spec import NetSpec
from keras_regnet.pretrained.convert import convert_state_dict
from keras_regnet.pretrained.tags import DEFAULT_TAG, tagged_name
from keras_regnet.zoo import ZOO, ZooEntry, get_entry

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
FILENAME = "model.safetensors"
TAG = DEFAULT_TAG

# SHA-256 of timm/<arch>.pycls_in1k/model.safetensors as published on each file's Hub page
# (Git LFS details). Models without a recorded hash are checked by structure instead: every key
# present, no key left over, every shape equal to the model's (done by the converter).
_SHA256: dict[str, str] = {
    "regnetx_400mf": "ecdce54f8bbd8f932653a04ad38aff6fd6e3b52ab16c32393b25390188e0e447",
}


@dataclass(frozen=True)
class WeightSource:
    """Where the pretrained weights of one zoo model come from."""

    model: str  # canonical zoo name, e.g. "regnety_600mf"
    hf_repo: str  # e.g. "timm/regnety_006.pycls_in1k"
    filename: str
    sha256: str | None
    pycls_url: str  # the original pycls checkpoint (torch pickle, BGR stem)

    def url(self, endpoint: str | None = None) -> str:
        """Download URL; `endpoint` (default $HF_ENDPOINT or huggingface.co) allows a mirror."""
        base = (endpoint or os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")
        return f"{base}/{self.hf_repo}/resolve/main/{self.filename}"

    @property
    def cache_stem(self) -> str:
        return f"keras_regnet_{self.model.replace('.', '_')}_{TAG}"


SOURCES: dict[str, WeightSource] = {
    name: WeightSource(name, f"timm/{tagged_name(entry)}", FILENAME, _SHA256.get(name),
                       entry.weights_url)
    for name, entry in ZOO.items()
}


def zoo_entry_for(spec: NetSpec) -> ZooEntry:
    """The zoo model whose architecture equals `spec` (its name may differ); else ValueError."""
    entry = ZOO.get(spec.name)
    if entry is not None and _same_architecture(entry.spec(), spec):
        return entry
    for entry in ZOO.values():
        if _same_architecture(entry.spec(), spec):
            return entry
    raise WeightsError(
        f"weights='imagenet' exists only for the 24 zoo models (keras_regnet.list_models()); the "
        f"network {spec.name!r} is none of them. Pass weights=None or a path to a weights file."
    )


def _same_architecture(a: NetSpec, b: NetSpec) -> bool:
    return dataclasses.replace(a, name="_") == dataclasses.replace(b, name="_")


def cached_paths(source: WeightSource) -> tuple[str, str]:
    """(downloaded .safetensors, converted arrays .layers.npz) paths in the Keras cache."""
    folder = dl.keras_cache_dir("models")
    return (os.path.join(folder, f"{source.cache_stem}.safetensors"),
            os.path.join(folder, f"{source.cache_stem}.layers.npz"))


def imagenet_arrays(model: str, *, progress: bool = True) -> dict[str, list[np.ndarray]]:
    """Keras weight arrays by layer name of zoo `model` (with its 1000-class head), from the cache;
    downloaded and converted on first use."""
    source = SOURCES[get_entry(model).name]
    raw, converted = cached_paths(source)
    if os.path.isfile(converted):
        return read_layer_arrays(converted)
    downloaded = False
    if os.path.isfile(raw):
        _check_existing(source, raw)
    else:
        url = source.url()
        report = dl.print_progress(f"Downloading {url}") if progress else None
        dl.download(url, raw, source.sha256, hint=_manual_hint(source), progress=report)
        downloaded = True
    try:
        arrays = convert_state_dict(read_state_dict(raw), get_entry(source.model).spec(),
                                    naming="timm", bgr_to_rgb=False, source=raw)
    except ValueError as err:
        raise WeightsError(
            f"the weights file {raw} does not hold {source.model} from {source.hf_repo} ({err}); "
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


def _check_existing(source: WeightSource, raw: str) -> None:
    """A file already in the cache (e.g. placed by hand) must match the recorded hash, if any."""
    if source.sha256 and dl.sha256_of(raw) != source.sha256:
        raise dl.WeightsDownloadError(
            f"{raw} does not have the SHA-256 of {source.url()} ({source.sha256}); delete it or "
            f"replace it with that file"
        )


def _manual_hint(source: WeightSource) -> str:
    return (
        f"or pass weights='/path/to/{source.filename}' (any copy of {source.hf_repo}) to the model builder "
        f"(--weights=/path/to/{source.filename} on the CLIs). The original pycls checkpoint {source.pycls_url} "
        "also works as weights=<path> when torch is installed."
    )
