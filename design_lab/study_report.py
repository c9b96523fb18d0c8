"""The study's report: STUDY_DIR/report/report.md with the pairwise EDF figures, the chain table, the
noise floor, and the last space's trend panels and e_fit plot (PNG + SVG each).

Reads whatever is finished, so it can be written while a study still runs (each space's n is stated).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from design_lab.study_compare import ALPHA, PairComparison, compare, exceeds_noise
from design_lab.study_noise import NoiseFloor, load_noise
from design_lab.study_plan import REPORT_DIR, StudyPlan, describe, sweep_dir
from design_lab.sweep_report import LOG_PARAMS, TREND_PARAMS, Sweep, load_sweep, trend_bands
from keras_regnet.design_space import plots
from keras_regnet.design_space.stats import summarize
from keras_regnet.fileio import write_text_atomic


def _load(study_dir: str, plan: StudyPlan) -> list[Sweep]:
    """The spaces with at least one finished model, in chain order."""
    out = []
    for space in plan.spaces:
        path = sweep_dir(study_dir, space)
        if os.path.exists(os.path.join(path, "results.jsonl")):
            s = load_sweep(path)
            if s.records:
                out.append(s)
    return out


def pair_table(sweeps: list[Sweep], noise: NoiseFloor, repeats: int
               ) -> list[tuple[Sweep, Sweep, PairComparison]]:
    """compare() of every adjacent pair holding at least 2 models each."""
    out = []
    for a, b in zip(sweeps, sweeps[1:]):
        if a.errors.size >= 2 and b.errors.size >= 2:
            out.append((a, b, compare(a.errors, b.errors, repeats)))
    return out


def write_report(study_dir: str, plan: StudyPlan, repeats: int = 10_000) -> str:
    """Write STUDY_DIR/report/report.md and its figures; return the report's path."""
    out_dir = os.path.join(study_dir, REPORT_DIR)
    os.makedirs(out_dir, exist_ok=True)
    sweeps = _load(study_dir, plan)
    noise = load_noise(study_dir)
    pairs = pair_table(sweeps, noise, repeats)
    figures: list[tuple[str, str]] = []
    if sweeps:
        figures.append(("EDFs of the whole chain", plots.plot_edfs(
            {s.name: s.errors for s in sweeps}, os.path.join(out_dir, "edf_chain"), title="Error EDF: chain")[0]))
    for k, (a, b, _) in enumerate(pairs):
        stem = os.path.join(out_dir, f"edf_pair{k}_{a.name}_{b.name}")
        figures.append((f"{a.name} -> {b.name}", plots.plot_edfs(
            {a.name: a.errors, b.name: b.errors}, stem, title=f"Error EDF: {a.name} -> {b.name}")[0]))
    trends: dict[str, Any] = {}
    if sweeps and sweeps[-1].errors.size >= 2:
        last = sweeps[-1]
        trends = {k: v for k, v in trend_bands(last, repeats).items()}
        shown = {p: last.columns[p] for p in TREND_PARAMS if p in trends}
        figures.append((f"{last.name}: error vs d, w0, wa, wm, b, g", plots.plot_trends(
            shown, last.errors, os.path.join(out_dir, f"trends_{last.name}"), trends, log=LOG_PARAMS,
            title=f"{last.name}: parameter trends (bootstrap 95% best range)")[0]))
        figures.append(("e_fit vs error", plots.plot_efit_vs_error(
            {s.name: (s.columns["e_fit"], s.errors) for s in sweeps}, os.path.join(out_dir, "efit_vs_error"))[0]))
    text = _markdown(plan, sweeps, pairs, noise, trends, figures, out_dir, repeats)
    path = os.path.join(out_dir, "report.md")
    write_text_atomic(path, text)
    return path


def _ci(v: float, ci: tuple[float, float]) -> str:
    return f"{v:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _markdown(plan: StudyPlan, sweeps: list[Sweep], pairs: list, noise: NoiseFloor, trends: dict,
              figures: list[tuple[str, str]], out_dir: str, repeats: int) -> str:
    lines = ["# Design-space study", "", describe(plan), ""]
    if not sweeps:
        return "\n".join(lines + ["No model has finished yet.", ""])
    train_s = sum(float(r.get("train_time_s", 0.0)) for s in sweeps for r in s.records)
    lines += [f"Finished: {', '.join(f'{s.name} n={s.errors.size}' for s in sweeps)} of {plan.n} planned per "
              f"space; summed training time {train_s / 60:.1f} min.", "",
              "## Spaces", "", "| space | n | min error | median | mean error | diverged |", "|---|---|---|---|---|---|"]
    for s in sweeps:
        sm = summarize(s.errors)
        div = sum(bool(r.get("diverged")) for r in s.records)
        lines.append(f"| {s.name} | {sm.n} | {sm.min_error:.2f} | {np.median(s.errors):.2f} | "
                     f"{sm.mean_error:.2f} | {div} |")
    lines += ["", "## Chain: did each refinement help?", "",
              f"Delta mean = mean error of the refined space minus the coarser one (negative: the refinement "
              f"helped); EDF area = integral of |F_A - F_B| over error (percentage points, >= 0). Intervals: "
              f"bootstrap 95% ({repeats:,} resamples of each population). Test: two-sided Mann-Whitney U "
              f"(scipy.stats.mannwhitneyu), with the two-sample Kolmogorov-Smirnov statistic D beside it. "
              f"Verdict: helped / hurt when the delta-mean interval excludes 0 and Mann-Whitney p < {ALPHA}, "
              f"else cannot tell.", ""]
    noise_note = "n/a" if not noise.available else f"2 sd = {2 * noise.pooled_sd:.2f}"
    lines += [f"| pair | n | mean A -> B | delta mean [95% CI] | EDF area [95% CI] | Mann-Whitney p | KS D (p) | "
              f"verdict | beyond noise ({noise_note}) |", "|---|---|---|---|---|---|---|---|---|"]
    for a, b, c in pairs:
        beyond = "n/a" if not noise.available else ("yes" if exceeds_noise(c.delta_mean, noise.pooled_sd) else "no")
        lines.append(f"| {a.name} -> {b.name} | {c.n_a} / {c.n_b} | {c.mean_a:.2f} -> {c.mean_b:.2f} | "
                     f"{_ci(c.delta_mean, c.delta_mean_ci)} | {c.area:.2f} [{c.area_ci[0]:.2f}, {c.area_ci[1]:.2f}] | "
                     f"{c.mannwhitney_p:.3g} | {c.ks_stat:.2f} ({c.ks_p:.3g}) | {c.verdict} | {beyond} |")
    lines += ["", "## Noise floor", ""]
    if noise.available:
        lines += [f"{len(noise.per_model)} models retrained with other seeds ({noise.runs} trainings in all): "
                  f"pooled per-model standard deviation {noise.pooled_sd:.2f} percentage points of top-1 error. "
                  f"A pair's mean difference counts as beyond training noise when it exceeds two of them.", "",
                  "| model | errors (first training first) | sd | range |", "|---|---|---|---|"]
        for m in noise.per_model:
            errs = ", ".join(f"{e:.2f}" for e in m["errors"])
            lines.append(f"| {m['space']} #{m['index']} | {errs} | {m['sd']:.2f} | {m['range']:.2f} |")
    else:
        lines.append("Not measured yet (no model retrained).")
    if trends:
        lines += ["", f"## {sweeps[-1].name}: where the best models are", "",
                  "Empirical bootstrap (the paper's): resample 25% of the models, keep the best model's value; "
                  "95% range and most likely value.", "", "| parameter | 95% range | likely best |", "|---|---|---|"]
        for name, band in trends.items():
            lines.append(f"| {name} | [{band.low:.4g}, {band.high:.4g}] | {band.best:.4g} |")
    lines += ["", "## Figures", ""]
    for title, png in figures:
        lines += [f"{title}:", "", f"![{title}]({os.path.relpath(png, out_dir)})", ""]
    return "\n".join(lines)
