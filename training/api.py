"""Library entry point: train one model briefly and get its error, e.g. from a design-space sweep.

    from training.api import train
    result = train("regnety_digits", epochs=1)   # or a NetSpec, a spec dict, a JSON path
    result["top1_err"], result["train_time_s"]

The signature is stable (documented in docs/training.md); it runs the same loop as the CLI.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import tempfile
from typing import Any

from keras_regnet.errors import ConfigError
from training.core.config import TrainConfig

# Where the library's defaults differ from the CLI's (TrainConfig's): one short, quiet epoch on one
# device at the digits' resolution, so a sweep or a notebook gets a number quickly. Every other
# keyword defaults to its TrainConfig field.
API_DEFAULTS: dict[str, Any] = {"epochs": 1, "batch_size": 64, "image_size": 32, "verbose": 0,
                                "strategy": "one_device"}
_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "model")


def train(spec_or_name: Any, **overrides: Any) -> dict[str, Any]:
    """Train `spec_or_name` and return metrics (top1_err/top5_err in %, train_time_s, steps, ...).

    Keywords are TrainConfig fields (the CLI flags of the same names, e.g. dataset, data_dir, lr,
    weight_decay, ema_decay, seed, max_steps, weights, freeze), defaulting to TrainConfig's values
    except API_DEFAULTS (epochs=1, batch_size=64, image_size=32, verbose=0, strategy="one_device").
    model_dir=None trains in a temporary directory that is removed afterwards (nothing to resume), and
    writes no checkpoints, TensorBoard logs or model.keras there (a sweep's model costs seconds less);
    with a model_dir the run resumes from its checkpoints like the CLI. `seed` seeds the
    initialisation (Python/NumPy/TF), the data order and the augmentation. `weights` ("imagenet",
    a weights file or a run directory) fine-tunes from pretrained weights as --weights does
    (classifier re-initialised when the class count differs; `freeze` as --freeze; note that the
    explicit `epochs`, `lr` and `warmup_epochs` arguments win over the fine-tuning recipe).
    """
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"train() got unknown keyword(s) {', '.join(unknown)}; the model is the first "
                          f"argument and the keywords are TrainConfig fields: {', '.join(_FIELDS)}")
    model_dir = overrides.pop("model_dir", None)
    temporary = model_dir is None
    directory = tempfile.mkdtemp(prefix="regnet-train-") if temporary else model_dir
    model_name = spec_or_name if isinstance(spec_or_name, str) else "spec"
    cfg = TrainConfig(**{**API_DEFAULTS, **overrides, "model": model_name, "model_dir": directory})
    from training.run import run

    try:
        spec = None if isinstance(spec_or_name, str) else spec_or_name
        result = run(cfg, spec=spec, persist=not temporary)
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    if temporary:
        result.update(model_dir=None, checkpoint=None, model_path=None)
    return result


def _signature() -> inspect.Signature:
    """train's signature as help() and IDEs show it: every TrainConfig field with its effective default."""
    params = [inspect.Parameter("spec_or_name", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Any)]
    for f in dataclasses.fields(TrainConfig):
        if f.name != "model":
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                            default=API_DEFAULTS.get(f.name, f.default), annotation=f.type))
    return inspect.Signature(params, return_annotation="dict[str, Any]")


train.__signature__ = _signature()  # type: ignore[attr-defined]
