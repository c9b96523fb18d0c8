"""A trained population as columns: errors, complexity and every design parameter per model.

Turns sweep records (sample + training result) into numpy columns for EDFs, bootstraps and plots.
RegNet models carry their sampled (d, w0, wa, wm, b, g); b is always the paper's bottleneck ratio
(inner width w / b, the inverse of StageSpec.bottleneck_ratio). AnyNet models get (w0, wa, wm) from the
quantized linear fit of their per-block widths, whose error e_fit is a column for every model.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from keras_regnet.regnet import fit_quantized_linear
from keras_regnet.spec import NetSpec, paper_bottleneck

REGNET_KEYS = ("d", "w0", "wa", "wm", "b", "g")


def _shared(values: list[float]) -> float:
    """The common value of a per-stage list, or NaN when the stages differ."""
    return float(values[0]) if len(set(values)) == 1 else float("nan")


def model_parameters(spec: NetSpec, params: dict[str, Any]) -> dict[str, float]:
    """Design parameters of one model: d, w0, wa, wm, b, g, e_fit and per-stage d_i, w_i."""
    fit = fit_quantized_linear(spec.block_widths())
    row: dict[str, float] = {"d": float(spec.depth), "e_fit": fit.e_fit, "w0": float(fit.w0),
                             "wa": fit.wa, "wm": fit.wm, "num_stages": float(len(spec.stages)),
                             "b": _shared(spec.paper_bottlenecks), "g": _shared(spec.group_widths)}
    if all(k in params for k in REGNET_KEYS):
        row.update({k: float(params[k]) for k in REGNET_KEYS})
    for i, st in enumerate(spec.stages, start=1):
        row[f"d{i}"], row[f"w{i}"] = float(st.depth), float(st.width)
        row[f"b{i}"], row[f"g{i}"] = paper_bottleneck(st.bottleneck_ratio), float(st.group_width)
    return row


def to_columns(records: Iterable[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Columns over sweep records (dicts with spec, params, complexity, top1_err, ...).

    Missing values (e.g. a stage that only some models have) are NaN.
    """
    rows = []
    for r in records:
        spec = NetSpec.from_dict(r["spec"])
        row = model_parameters(spec, r.get("params", {}))
        row.update({k: float(v) for k, v in r.get("complexity", {}).items()})
        for k in ("top1_err", "top5_err", "train_time_s", "index"):
            if r.get(k) is not None:
                row[k] = float(r[k])
        rows.append(row)
    keys = sorted({k for row in rows for k in row})
    return {k: np.array([row.get(k, np.nan) for row in rows], dtype=np.float64) for k in keys}
