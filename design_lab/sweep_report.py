"""Analyze finished sweeps: statistics, the paper's figures and a markdown report.

Library side of `python -m design_lab.analyze`; numpy + the design_space statistics, matplotlib only
through `keras_regnet.design_space.plots`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from keras_regnet.design_space import plots
from keras_regnet.design_space.population import to_columns
from keras_regnet.design_space.stats import (
    BootstrapRange,
    bootstrap_best,
    complexity_weights,
    edf_area,
    summarize,
)
from keras_regnet.errors import DataError
from keras_regnet.fileio import write_text_atomic
from keras_regnet.spec import NetSpec
from design_lab.sweep_results import ResultsFile
from design_lab.sweep_runner import CONFIG, RESULTS

TREND_PARAMS = ("d", "w0", "wa", "wm", "b", "g")
LOG_PARAMS = ("w0", "wa", "w4", "g")


@dataclass
class Sweep:
    """One loaded sweep: its name (design space), records and per-model columns."""

    name: str
    path: str
    records: list[dict[str, Any]]
    columns: dict[str, np.ndarray]

    @property
    def errors(self) -> np.ndarray:
        return self.columns["top1_err"]


def load_sweep(path: str, name: Optional[str] = None) -> Sweep:
    """Read SWEEP_DIR/results.jsonl (+ config.json for the space name)."""
    results = os.path.join(path, RESULTS)
    if not os.path.exists(results):
        raise DataError(f"{path!r} is not a sweep directory: {results} does not exist")
    records = ResultsFile(results).load()
    if not records:
        raise DataError(f"sweep {path!r} has no finished models yet ({results} is empty)")
    label = name
    if label is None:
        try:
            with open(os.path.join(path, CONFIG), encoding="utf-8") as f:
                label = json.load(f)["space"]
        except (OSError, KeyError, ValueError):
            label = records[0].get("space", os.path.basename(os.path.normpath(path)))
    return Sweep(str(label), path, records, to_columns(records))


def _unique_names(sweeps: list[Sweep]) -> None:
    """Give every sweep a distinct label; figures and the report key populations by it.

    Sweeps of the same space get the shortest trailing part of their path that tells them apart
    (`regnetx (run_a/regnetx)`); the same directory given twice gets `#2`, `#3`, ...
    """
    spaces = [s.name for s in sweeps]
    parts = [os.path.normpath(os.path.abspath(s.path)).split(os.sep) for s in sweeps]
    for k, s in enumerate(sweeps):
        same = [j for j, name in enumerate(spaces) if name == spaces[k]]
        if len(same) == 1:
            continue
        others = {tuple(parts[j]) for j in same if parts[j] != parts[k]}
        depth = 1
        while depth < len(parts[k]) and any(tuple(o[-depth:]) == tuple(parts[k][-depth:]) for o in others):
            depth += 1
        label = "/".join(p for p in parts[k][-depth:] if p)
        copies = [j for j in same if parts[j] == parts[k]]
        suffix = f" #{copies.index(k) + 1}" if len(copies) > 1 else ""
        s.name = f"{spaces[k]} ({label}){suffix}"


def trend_bands(sweep: Sweep, repeats: int = 10_000, seed: int = 0) -> dict[str, BootstrapRange]:
    """Bootstrap best-value ranges for d, w0, wa, wm, b, g (and w4 when present) of one sweep."""
    bands = {}
    for name in TREND_PARAMS + ("w4", "e_fit"):
        x = sweep.columns.get(name)
        if x is None or np.all(np.isnan(x)):
            continue
        keep = ~np.isnan(x)
        bands[name] = bootstrap_best(x[keep], sweep.errors[keep], repeats=repeats, seed=seed)
    return bands


def analyze(sweep_dirs: list[str], out_dir: str, repeats: int = 10_000, normalized: bool = True,
            top: int = 3) -> dict[str, Any]:
    """Write the figures and report.md for the sweeps into out_dir; return their paths."""
    sweeps = [load_sweep(p) for p in sweep_dirs]
    _unique_names(sweeps)
    os.makedirs(out_dir, exist_ok=True)
    figures: dict[str, list[str]] = {}
    pops = {s.name: s.errors for s in sweeps}
    figures["edf"] = plots.plot_edfs(pops, os.path.join(out_dir, "edf"))
    if normalized:
        weights = {s.name: complexity_weights(s.columns["flops"]) for s in sweeps}
        figures["edf_normalized"] = plots.plot_edfs(pops, os.path.join(out_dir, "edf_normalized"), weights,
                                                    title="Complexity-normalized error EDF")
    figures["efit"] = plots.plot_efit_vs_error({s.name: (s.columns["e_fit"], s.errors) for s in sweeps},
                                               os.path.join(out_dir, "efit_vs_error"))
    bands_by = {}
    for k, s in enumerate(sweeps):
        slug = f"{k}_{_slug(s.name)}"
        bands = trend_bands(s, repeats)
        bands_by[s.name] = bands
        shown = {n: s.columns[n] for n in bands if n != "e_fit"}
        figures[f"trends_{slug}"] = plots.plot_trends(shown, s.errors, os.path.join(out_dir, f"trends_{slug}"),
                                                      bands, log=LOG_PARAMS, title=f"{s.name}: parameter trends")
        order = np.argsort(s.errors, kind="stable")
        pick = lambda idx: [(_legend(s.records[i]), NetSpec.from_dict(s.records[i]["spec"]).block_widths())
                            for i in idx]
        figures[f"widths_{slug}"] = plots.plot_block_widths(
            pick(order[:top]), pick(order[::-1][:top]), os.path.join(out_dir, f"block_widths_{slug}"),
            title=f"{s.name}: best (top) and worst (bottom) models")
    report = _markdown(sweeps, bands_by, figures, out_dir, top, repeats)
    report_path = os.path.join(out_dir, "report.md")
    write_text_atomic(report_path, report)
    return {"report": report_path, "figures": figures}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def _legend(rec: dict[str, Any]) -> str:
    spec = NetSpec.from_dict(rec["spec"])
    return (f"err {rec['top1_err']:.1f}%  d={spec.depths}\nw={spec.widths}\n"
            f"b={_compact(spec.paper_bottlenecks)} g={_compact(spec.group_widths)}")


def _compact(values: list) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(values)


def _markdown(sweeps: list[Sweep], bands_by: dict, figures: dict, out_dir: str, top: int,
              repeats: int) -> str:
    lo = min(float(s.errors.min()) for s in sweeps)
    hi = max(float(s.errors.max()) for s in sweeps)
    lines = ["# Design-space sweep report", "",
             f"EDF area = integral of the error EDF over [{lo:.2f}, {hi:.2f}] % (larger is better).", "",
             "| space | n | min error | mean error | EDF area | median flops | sweep | diverged |",
             "|---|---|---|---|---|---|---|---|"]
    for s in sweeps:
        sm = summarize(s.errors)
        area = edf_area(s.errors, lo, hi) if hi > lo else 0.0
        diverged = sum(bool(r.get("diverged")) for r in s.records)
        lines.append(f"| {s.name} | {sm.n} | {sm.min_error:.2f} | {sm.mean_error:.2f} | {area:.3f} | "
                     f"{np.median(s.columns['flops']) / 1e6:.2f}M | `{s.path}` | {diverged} |")
    if any(r.get("diverged") for s in sweeps for r in s.records):
        lines += ["", "Diverged models (training loss became NaN/inf) count with "
                  "100% error in the EDFs and bootstrap, as models that learned nothing."]
    lines += ["", "## Where the best models are (empirical bootstrap, 95% CI and most likely value)", "",
              f"Resample 25% of the models with replacement {repeats:,} times, keep the best model's value each "
              "time. RegNet sweeps report their sampled d, w0, wa, wm, b, g; for AnyNet sweeps w0, wa, wm "
              "come from the quantized linear fit of each model's per-block widths (e_fit is its error), "
              "b and g appear only when shared by all stages, w4 is the last stage's width. b is the paper's "
              "bottleneck ratio (inner width w / b).", ""]
    for s in sweeps:
        lines += [f"### {s.name}", "", "| parameter | 95% range | likely best |", "|---|---|---|"]
        for name, b in bands_by[s.name].items():
            lines.append(f"| {name} | [{b.low:.4g}, {b.high:.4g}] | {b.best:.4g} |")
        lines += ["", f"Best {top} models:", "", "| error | flops | params | depths | widths | b | g | e_fit |",
                  "|---|---|---|---|---|---|---|---|"]
        for i in np.argsort(s.errors, kind="stable")[:top]:
            r = s.records[i]
            spec = NetSpec.from_dict(r["spec"])
            lines.append(f"| {r['top1_err']:.2f} | {r['complexity']['flops'] / 1e6:.2f}M | "
                         f"{r['complexity']['params'] / 1e6:.3f}M | {spec.depths} | {spec.widths} | "
                         f"{_compact(spec.paper_bottlenecks)} | {_compact(spec.group_widths)} | "
                         f"{s.columns['e_fit'][i]:.3f} |")
        lines.append("")
    lines += ["## Figures", ""]
    for key, paths in figures.items():
        png = os.path.relpath(paths[0], out_dir)
        lines.append(f"- {key}: ![{key}]({png}) ({', '.join(os.path.relpath(p, out_dir) for p in paths)})")
    return "\n".join(lines) + "\n"
