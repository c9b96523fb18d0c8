"""Analyzer: figures (PNG + SVG) and report from finished sweeps; a real tiny end-to-end sweep."""

import os
import subprocess
import sys

import pytest

from tests.design_lab.test_sweep import TINY, fake_train
from design_lab.sweep_report import analyze, load_sweep
from design_lab.sweep_runner import SweepConfig, run
from tests.helpers.paths import REPO_ROOT
from tests.helpers.quiet import assert_quiet

ROOT = str(REPO_ROOT)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    dirs = []
    for space in ("regnetx", "anynetx_a"):
        d = str(root / space)
        run(d, SweepConfig(space, 24, seed=1, **TINY, train={"epochs": 1}), fake_train, report=lambda s: None)
        dirs.append(d)
    return dirs


@pytest.fixture(scope="module")
def analysis(sweeps, tmp_path_factory):
    """One run of the analyzer CLI over both sweeps (plots are the slow part, so only once)."""
    out_dir = str(tmp_path_factory.mktemp("analysis"))
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-m", "design_lab.analyze", *sweeps, f"--out_dir={out_dir}",
                          "--bootstrap_repeats=500"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert_quiet(out)
    return out.stdout, out_dir


def test_analyze_writes_every_figure_as_png_and_svg_and_a_report(analysis):
    stdout, out_dir = analysis
    assert f"report: {out_dir}/report.md" in stdout
    figs = dict(line.split(": ", 1) for line in stdout.strip().splitlines() if not line.startswith("report"))
    assert {"edf", "edf_normalized", "efit", "trends_0_regnetx", "widths_1_anynetx_a"} <= set(figs)
    for line in figs.values():
        paths = line.split()
        assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "svg"]
        with open(paths[0], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(paths[1]) > 1000
    report = open(os.path.join(out_dir, "report.md")).read()
    for text in ("| regnetx | 24 |", "| anynetx_a | 24 |", "EDF area", "| wm |", "| w0 |", "| g |",
                 "Best 3 models", "edf.png"):
        assert text in report, text


def test_loaded_sweeps_carry_design_parameters_and_efit(sweeps):
    reg, anynet = (load_sweep(d) for d in sweeps)
    assert reg.name == "regnetx" and len(reg.records) == 24
    for k in ("d", "w0", "wa", "wm", "b", "g", "e_fit", "flops", "top1_err"):
        assert k in reg.columns and len(reg.columns[k]) == 24
    # RegNets whose widths are untouched by the group-width adjustment fit the rule exactly.
    exact = [i for i, r in enumerate(reg.records) if r["params"]["b"] == 1 and r["params"]["g"] <= 8]
    assert exact and all(reg.columns["e_fit"][i] < 1e-12 for i in exact)
    assert anynet.columns["e_fit"].mean() > reg.columns["e_fit"].mean()


def test_sweeps_of_one_space_in_same_named_directories_stay_apart(sweeps, tmp_path):
    """runA/regnetx and runB/regnetx used to share one label: one EDF curve, one set of bands."""
    import shutil

    a, b = str(tmp_path / "runA" / "regnetx"), str(tmp_path / "runB" / "regnetx")
    shutil.copytree(sweeps[0], a)
    shutil.copytree(sweeps[1], b)  # an anynetx_a sweep, relabelled as a second regnetx run
    with open(os.path.join(b, "config.json"), "w") as f:
        f.write('{"space": "regnetx"}')
    result = analyze([a, b, a], str(tmp_path / "out"), repeats=50, normalized=False, top=1)
    report = open(result["report"]).read()
    for label in ("regnetx (runA/regnetx) #1", "regnetx (runB/regnetx)", "regnetx (runA/regnetx) #2"):
        assert f"### {label}\n" in report, label
    bands = {label: report.split(f"### {label}\n", 1)[1].split("Best 1 models", 1)[0]
             for label in ("regnetx (runA/regnetx) #1", "regnetx (runB/regnetx)")}
    assert bands["regnetx (runA/regnetx) #1"] != bands["regnetx (runB/regnetx)"]
    assert "with replacement 50 times" in report  # the report states the repeats actually used


def test_cli_rejects_directories_that_are_not_sweeps(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    bad = subprocess.run([sys.executable, "-m", "design_lab.analyze", str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "is not a sweep directory" in bad.stderr
    with pytest.raises(ValueError, match="is not a sweep directory"):
        load_sweep(str(tmp_path))


@pytest.mark.slow
def test_tiny_real_sweep_end_to_end(tmp_path):
    """Three RegNetX models, a few steps each on the embedded digits, then the analyzer.

    Slow (about a minute per model on a busy 2-core box, mostly graph tracing in the trainer)."""
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}
    d = str(tmp_path / "sweep")
    cmd = [sys.executable, "-m", "design_lab.sweep", f"--sweep_dir={d}", "--space=regnetx", "--num_models=3",
           "--epochs=1", "--max_steps=3", "--batch_size=32", "--image_size=16", "--stem_width=16",
           "--flops_range=0.5M,2M"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "results:" in out.stdout and "(3/3 models done)" in out.stdout
    sweep = load_sweep(d)
    assert len(sweep.records) == 3
    assert all(0 <= r["top1_err"] <= 100 and r["train_time_s"] > 0 for r in sweep.records)
    assert os.path.isdir(os.path.join(d, "tensorboard"))
    result = analyze([d], os.path.join(d, "analysis"), repeats=200)
    assert os.path.exists(result["figures"]["edf"][0])
