"""python -m design_lab.study end to end: a tiny study (n = 4 per space, 1 epoch), killed and resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from design_lab.study_plan import StudyPlan
from design_lab.sweep_results import ResultsFile
from tests.helpers.paths import REPO_ROOT
from tests.helpers.quiet import assert_quiet

ROOT = str(REPO_ROOT)
SPACES = ("anynetx_a", "anynetx_c", "anynetx_e", "regnetx")


def _cli(study_dir, *extra):
    return [sys.executable, "-m", "design_lab.study", f"--study_dir={study_dir}", "--n=4", "--epochs=1",
            "--round_size=2", "--noise_models=3", "--noise_after=2", "--bootstrap_repeats=500",
            "--train_fn=tests.design_lab.test_sweep:fake_train", *extra]


def _indices(study_dir, space):
    with open(os.path.join(study_dir, space, "results.jsonl"), "rb") as f:
        raw = f.read().split(b"\n")
    assert raw[-1] == b""
    return [json.loads(x)["index"] for x in raw[:-1]]


def test_killed_study_resumes_without_losing_or_repeating_a_model_and_reports_the_chain(tmp_path):
    d = str(tmp_path / "study")
    env = {**os.environ, "PYTHONPATH": ROOT, "FAKE_TRAIN_SECONDS": "0.3"}
    proc = subprocess.Popen(_cli(d), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    count = lambda: sum(len(ResultsFile(os.path.join(d, s, "results.jsonl")).load()) for s in SPACES)
    while time.monotonic() < deadline and proc.poll() is None and count() < 7:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    first_out = proc.stdout.read().decode()
    proc.wait()
    killed_at = count()
    assert 7 <= killed_at < 16, first_out
    # the plan and the estimate come before training; rounds keep the spaces level
    assert "4 models per space (16 in all)" in first_out and "estimate:" in first_out
    assert first_out.index("estimate:") < first_out.index("[study 2/16 models")
    assert all(len(_indices(d, s)) >= 1 for s in SPACES)
    noise_done = len(ResultsFile(os.path.join(d, "noise", "results.jsonl"), key="slot").load())
    before = {s: ResultsFile(os.path.join(d, s, "results.jsonl")).load() for s in SPACES}

    out = subprocess.run(_cli(d), cwd=ROOT, env={**env, "FAKE_TRAIN_SECONDS": "0"}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"estimate: {16 - killed_at + 3 - noise_done} trainings left" in out.stdout
    for s in SPACES:
        assert sorted(_indices(d, s)) == [0, 1, 2, 3]
        after = ResultsFile(os.path.join(d, s, "results.jsonl")).load()
        assert after[:len(before[s])] == before[s]  # nothing finished before the kill was redone
        # the paper's protocol: model i gets the same seed in every space
        assert [r["seed"] for r in sorted(after, key=lambda r: r["index"])] == [0, 1, 2, 3]
    noise = ResultsFile(os.path.join(d, "noise", "results.jsonl"), key="slot").load()
    assert sorted((r["space"], r["index"]) for r in noise) == [("anynetx_a", 0), ("anynetx_c", 0), ("anynetx_e", 0)]
    assert all(r["seed"] != r["original_seed"] for r in noise)
    report = open(os.path.join(d, "report", "report.md"), encoding="utf-8").read()
    for a, b in zip(SPACES, SPACES[1:]):
        assert f"| {a} -> {b} | 4 / 4 |" in report
        assert os.path.exists(os.path.join(d, "report", f"edf_pair{SPACES.index(a)}_{a}_{b}.png"))
    assert "Mann-Whitney" in report and "pooled per-model standard deviation" in report
    assert os.path.exists(os.path.join(d, "report", "trends_regnetx.png"))
    assert out.stdout.rstrip().endswith("report.md")
    assert_quiet(out)


def test_a_different_study_in_the_same_dir_and_bad_flags_are_refused(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run(_cli(tmp_path / "s", "--spaces=anynetx_a,anynetx_q"), cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "--spaces" in out.stderr and "anynetx_q" in out.stderr
    assert "Traceback" not in out.stderr
    from design_lab.study_run import save_plan

    save_plan(str(tmp_path / "t"), StudyPlan(("regnetx",), 4), 3, 1)
    with pytest.raises(ValueError, match="another study"):
        save_plan(str(tmp_path / "t"), StudyPlan(("regnetx", "regnety"), 4), 3, 1)


def test_a_tiny_study_trains_real_models_in_process(tmp_path):
    """The real trainer behind the study: 2 models per space, 1 epoch capped at 2 steps, in this process."""
    pytest.importorskip("tensorflow")
    from design_lab.study_report import write_report
    from design_lab.study_run import run_study
    from training.api import train

    plan = StudyPlan(("anynetx_e", "regnetx"), 2, 0, (0.3e6, 0.6e6), 16, 1, 16, 10,
                     {"dataset": "digits", "epochs": 1, "batch_size": 32, "image_size": 16, "max_steps": 2})
    lines = []
    run_study(str(tmp_path), plan, train, round_size=2, noise_models=0, report=lines.append)
    assert any(line.startswith("estimate: 3 trainings left") for line in lines), lines
    for space in plan.spaces:
        recs = ResultsFile(os.path.join(tmp_path, space, "results.jsonl")).load()
        assert sorted(r["index"] for r in recs) == [0, 1]
        assert all(0 <= r["top1_err"] <= 100 and r["train_result"]["steps"] == 2 for r in recs), recs
    report = open(write_report(str(tmp_path), plan, 200), encoding="utf-8").read()
    assert "| anynetx_e -> regnetx | 2 / 2 |" in report


@pytest.mark.parametrize("argv,backend", [(["--engine=jax"], "jax"), (["--engine", "tensorflow"], "tensorflow"),
                                          (["--n=3"], None)])
def test_the_engine_flag_picks_keras_backend_before_keras_loads(monkeypatch, argv, backend):
    from design_lab.study import _select_backend

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    _select_backend(["study.py", *argv])
    assert os.environ.get("KERAS_BACKEND") == backend


def test_the_default_recipe_trains_a_sampled_model_that_diverged_without_zero_init(tmp_path):
    """regnetx model 1 of the default study diverged (first-epoch mean loss 9.3e6) with the final BN gammas at
    one; the default recipe starts them at zero, and its first epoch ends below chance (ln 10 = 2.30) + margin."""
    pytest.importorskip("tensorflow")
    from design_lab.study import StudyCliConfig, build_plan
    from design_lab.sweep_runner import prepare
    from training.api import train

    plan = build_plan(StudyCliConfig()).with_n(2)  # the sampler's first models do not depend on n
    recipes = [plan.sweep_config(s).train for s in plan.spaces]
    assert all(r == recipes[0] for r in recipes) and recipes[0]["zero_init_final_gamma"] is True
    # pycls' sweep recipe (BASE_LR 0.1 at batch 128, no warmup), the LR scaled linearly to the batch
    assert recipes[0]["lr"] == pytest.approx(0.1 * recipes[0]["batch_size"] / 128) and recipes[0]["warmup_epochs"] == 0
    spec = prepare(str(tmp_path / "regnetx"), plan.sweep_config("regnetx"))[1].spec
    out = train(spec, **{**recipes[0], "max_steps": 22, "seed": 1})
    assert out["history"][0]["loss"] < 3.0, out["history"]


def test_every_shard_of_a_fresh_study_times_its_own_first_model_for_the_estimate(tmp_path, monkeypatch):
    """Shard 1/2 started beside shard 0/2 used to probe model 0 (not its own), train nothing and estimate 0 s."""
    import re

    from design_lab.study_run import run_study
    from tests.design_lab.test_sweep import fake_train

    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "0.3")
    plan = StudyPlan(("anynetx_e", "regnetx"), 2, 0, (0.3e6, 0.6e6), 16, 1, 16, 10, {"epochs": 1, "image_size": 16})
    lines = []
    run_study(str(tmp_path), plan, fake_train, shard=(1, 2), round_size=2, noise_models=0, report=lines.append)
    pace = float(re.search(r"x ([\d.]+) s/model", next(x for x in lines if x.startswith("estimate:"))).group(1))
    assert pace >= 0.3, lines
    for space in plan.spaces:  # shard 1/2 trained exactly its models (index 1), the probe included once
        assert [r["index"] for r in ResultsFile(os.path.join(tmp_path, space, "results.jsonl")).load()] == [1]


def test_a_noise_slot_whose_model_another_shard_finishes_later_is_not_lost(tmp_path):
    """Shard 1/2 reached the noise floor before shard 0/2 had trained regnetx model 0, skipped that slot and
    never came back to it (the digits run lost 1 of its 10 noise-floor models this way)."""
    from design_lab.study_run import run_study
    from tests.design_lab.test_sweep import fake_train

    plan = StudyPlan(("anynetx_e", "regnetx"), 4, 0, (0.3e6, 0.6e6), 16, 1, 16, 10, {"epochs": 1, "image_size": 16})
    d = str(tmp_path)

    shard0_ran = []

    def shard1_train(spec, **kwargs):  # shard 0 runs to its end while shard 1 trains a model of round 2
        if kwargs["seed"] == 3 and not shard0_ran:
            shard0_ran.append(True)
            run_study(d, plan, fake_train, shard=(0, 2), round_size=2, noise_models=2, noise_after=2,
                      report=lambda line: None)
        return fake_train(spec, **kwargs)

    lines = []
    run_study(d, plan, shard1_train, shard=(1, 2), round_size=2, noise_models=2, noise_after=2, report=lines.append)
    noise = ResultsFile(os.path.join(d, "noise", "results.jsonl"), key="slot").load()
    assert sorted((r["slot"], r["space"], r["index"]) for r in noise) == [(0, "anynetx_e", 0), (1, "regnetx", 0)]
    assert not any("wait for models" in line for line in lines), lines
