"""Latency analysis of measured populations (SWEEP_DIR/latency.jsonl): the paper's Fig. 12 on this CPU.

For every latency kind (LiteRT '<format>@<threads>' and TensorFlow 'tf_batch<N>'): latency vs flops,
activations and params per population with fitted lines and Pearson/Spearman correlations, which
metric predicts latency best, a linear latency model chosen by cross-validated error (saved to
latency_models.json for `--latency_range`), and the zoo's measured models on the same axes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from keras_regnet.design_space import plots
from keras_regnet.design_space.latency_model import (
    METRICS,
    Correlation,
    LatencyModel,
    best_predictor,
    correlation,
    fit_latency_model,
    save_models,
)
from keras_regnet.errors import ConfigError, DataError
from keras_regnet.fileio import write_text_atomic
from design_lab.sweep_results import ResultsFile

LATENCY = "latency.jsonl"
ZOO_SPACE = "zoo"


def has_latency(path: str) -> bool:
    return os.path.exists(os.path.join(path, LATENCY))


STATS = ("median_ms", "min_ms", "cpu_ms")


def latency_rows(records: list[dict[str, Any]], stat: str = "median_ms") -> list[dict[str, Any]]:
    """One flat row per record: flops, params, acts, image_size, name and every latency (`stat`, ms).

    Records without that statistic (e.g. cpu_ms of files written before it was recorded) leave it out.
    """
    if stat not in STATS:
        raise ConfigError(f"latency statistic must be one of {STATS}, got {stat!r}")
    rows = []
    for r in records:
        row = {k: float(r["complexity"][k]) for k in METRICS}
        row.update(image_size=int(r["image_size"]), space=r.get("space", ""),
                   name=r.get("params", {}).get("model", r["spec"].get("name", "")))
        for key, v in r.get("litert", {}).items():
            if stat in v:
                row[key] = float(v[stat])
        if "tf" in r and stat in r["tf"]:
            row[f"tf_batch{r['tf']['batch_size']}"] = float(r["tf"][stat])
        rows.append(row)
    return rows


def columns(rows: list[dict[str, Any]], key: str) -> dict[str, np.ndarray]:
    """Columns (flops, params, acts, key) of the rows that have a `key` latency."""
    have = [r for r in rows if key in r]
    return {k: np.array([r[k] for r in have], dtype=np.float64) for k in METRICS + (key,)}


def latency_keys(rows: list[dict[str, Any]]) -> list[str]:
    keys = {k for r in rows for k in r if "@" in k or k.startswith("tf_batch")}
    return sorted(keys, key=lambda k: (k.startswith("tf"), k))


def correlations(cols: dict[str, np.ndarray], key: str) -> list[Correlation]:
    return [correlation(m, cols[m], cols[key]) for m in METRICS]


def analyze_latency(sweep_dirs: list[str], names: list[str], out_dir: str, stat: str = "median_ms"
                    ) -> dict[str, Any]:
    """Figures, latency_models.json and latency.md for the latency files of these sweep directories."""
    pops: dict[str, list[dict[str, Any]]] = {}
    zoo: dict[str, dict[str, Any]] = {}
    for path, name in zip(sweep_dirs, names):
        rows = latency_rows(ResultsFile(os.path.join(path, LATENCY)).load(), stat)
        for row in rows:
            if row["space"] == ZOO_SPACE:
                zoo[row["name"]] = row
        sampled = [r for r in rows if r["space"] != ZOO_SPACE]
        if sampled:
            pops[name] = sampled
    if not pops:
        raise DataError(f"no measured sampled networks in {', '.join(sweep_dirs)} (only zoo models or empty "
                        f"{LATENCY} files)")
    sizes = {r["image_size"] for rows in pops.values() for r in rows}
    if len(sizes) != 1:
        raise DataError(f"latency populations were measured at different input sizes {sorted(sizes)}; "
                        f"analyze one size at a time")
    size = sizes.pop()
    os.makedirs(out_dir, exist_ok=True)
    pooled = [r for rows in pops.values() for r in rows]
    figures: dict[str, list[str]] = {}
    tables: dict[str, dict[str, list[Correlation]]] = {}
    models, form_errors, zoo_errors = [], {}, {}
    if not latency_keys(pooled):
        raise DataError(f"the latency files of {', '.join(sweep_dirs)} hold no {stat} values (files written "
                        f"before it was recorded?); choose another latency statistic of {STATS}")
    for key in latency_keys(pooled):
        per_pop = {name: columns(rows, key) for name, rows in pops.items()}
        per_pop = {n: c for n, c in per_pop.items() if len(c[key]) >= 3}
        if not per_pop:
            continue
        tables[key] = {n: correlations(c, key) for n, c in per_pop.items()}
        all_cols = columns(pooled, key)
        if len(per_pop) > 1:
            tables[key]["all"] = correlations(all_cols, key)
        fits = {n: {c.metric: (c.slope, c.intercept, c.pearson) for c in cs} for n, cs in tables[key].items()
                if n != "all"}
        zoo_here = {m: row for m, row in zoo.items() if key in row and row["image_size"] == size}
        slug = key.replace("@", "_t")
        figures[f"latency_{slug}"] = plots.plot_latency(
            per_pop, key, os.path.join(out_dir, f"latency_{slug}"), fits, zoo_here,
            title=f"{key} latency at {size}px vs complexity")
        if "@" in key and len(all_cols[key]) >= 10:  # LiteRT kinds: the budgets are for the device
            fmt, _, threads = key.partition("@")
            model, errors = fit_latency_model(all_cols, all_cols[key], fmt, int(threads or 0), size)
            models.append(model)
            form_errors[key] = errors
            if zoo_here:
                pred = model.predict(*(np.array([r[m] for r in zoo_here.values()]) for m in METRICS))
                meas = np.array([r[key] for r in zoo_here.values()])
                zoo_errors[key] = float(np.median(np.abs(pred / meas - 1)))
    models_path = os.path.join(out_dir, "latency_models.json")
    if models:
        save_models(models_path, models)
    report = os.path.join(out_dir, "latency.md")
    write_text_atomic(report, _markdown(tables, models, form_errors, zoo_errors, size, pops, zoo, stat))
    return {"report": report, "models": models_path if models else None, "figures": figures}


def _markdown(tables: dict, models: list[LatencyModel], form_errors: dict, zoo_errors: dict, size: int,
              pops: dict, zoo: dict, stat: str) -> str:
    counts = ", ".join(f"{n} (n={len(r)})" for n, r in pops.items())
    lines = ["# Latency vs complexity", "",
             f"Populations at {size}px: {counts}; zoo models measured: {len(zoo)}. Latency is the `{stat}` of "
             "repeated batch-1 LiteRT invokes (XNNPACK; '<format>@<threads>') or of TensorFlow batch runs "
             "('tf_batch<N>', ms per batch).", "",
             "## Correlation of latency with each complexity metric (Pearson r / Spearman rho)", "",
             "| latency | population | n | flops | acts | params | best predictor |", "|---|---|---|---|---|---|---|"]
    best_rows = []
    for key, per in tables.items():
        for name, cs in per.items():
            by = {c.metric: c for c in cs}
            best = best_predictor(cs)
            lines.append(f"| {key} | {name} | {cs[0].n} | " + " | ".join(
                f"{by[m].pearson:.3f} / {by[m].spearman:.3f}" for m in ("flops", "acts", "params")) + f" | {best} |")
            if name == "all" or len(per) == 1:
                best_rows.append((key, best, by[best].pearson))
    lines += ["", "## Which metric predicts latency best (all populations pooled, highest Pearson r)", "",
              "| latency | best metric | r |", "|---|---|---|"]
    lines += [f"| {k} | {m} | {r:.3f} |" for k, m, r in best_rows]
    if models:
        lines += ["", "## Latency models (least squares; form chosen by 5-fold held-out error)", "",
                  "| latency | form | model (ms) | held-out median abs rel. error | every form's error | zoo error |",
                  "|---|---|---|---|---|---|"]
        for m in models:
            terms = " + ".join(f"{c:.4g}*{f}/1e6" for f, c in zip(m.features, m.coefficients))
            every = ", ".join(f"{'+'.join(f)} {e:.1%}" for f, e in form_errors[m.key].items())
            z = f"{zoo_errors[m.key]:.1%}" if m.key in zoo_errors else "-"
            lines.append(f"| {m.key} | {'+'.join(m.features)} | {m.intercept:.3g} + {terms} | "
                         f"{m.held_out_error:.1%} | {every} | {z} |")
        lines += ["", "Use one with `--latency_range=lo,hi --latency_model=latency_models.json#<latency>` "
                  "(design_lab.sweep, design_lab.latency) or `sample(..., latency=(lo, hi), latency_model=...)`."]
    if zoo:
        lines += ["", "## Zoo models", "", "| model | flops | " + " | ".join(tables) + " |",
                  "|---|---|" + "---|" * len(tables)]
        for name, row in sorted(zoo.items(), key=lambda kv: kv[1]["flops"]):
            lines.append(f"| {name} | {row['flops'] / 1e6:.0f}M | " +
                         " | ".join(f"{row[k]:.2f}" if k in row else "-" for k in tables) + " |")
    return "\n".join(lines) + "\n"
