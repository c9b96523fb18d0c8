"""Latency as a complexity axis: statistics against scipy/numpy, budgets, the append-only latency file."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import stats

from keras_regnet.design_space import sample
from keras_regnet.design_space.latency_model import (
    LatencyModel, best_predictor, correlation, cross_validated_error, fit_latency_model, load_model, save_models,
)
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)


def _data(n=40, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    flops = rng.uniform(200e6, 1600e6, n)
    acts = flops / 100 * rng.uniform(0.5, 2.0, n)
    params = rng.uniform(2e6, 10e6, n)
    latency = 1.5 + 0.02 * flops / 1e6 + 1.1 * acts / 1e6
    return {"flops": flops, "acts": acts, "params": params}, latency * (1 + noise * rng.standard_normal(n))


def test_correlation_matches_scipy_including_ties():
    x = np.array([1, 2, 2, 3, 5, 5, 5, 8, 9, 12], dtype=float)
    y = np.array([2.0, 1.5, 3.5, 3.0, 6.0, 4.0, 6.0, 9.5, 8.0, 15.0])
    c = correlation("flops", x, y)
    line = stats.linregress(x, y)
    assert c.pearson == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert c.spearman == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert (c.slope, c.intercept) == pytest.approx((line.slope, line.intercept), abs=1e-10)
    with pytest.raises(ValueError, match="equal-length"):
        correlation("flops", [1, 2, 3], [1, 2])


def test_best_predictor_is_the_highest_pearson_r():
    cols, y = _data(noise=0.01)
    cs = [correlation(m, cols[m], y) for m in ("flops", "acts", "params")]
    expected = max(("flops", "acts", "params"), key=lambda m: stats.pearsonr(cols[m], y).statistic)
    assert best_predictor(cs) == expected and expected != "params"


def test_latency_model_fit_recovers_the_law_and_picks_its_form():
    cols, y = _data(noise=0.0)
    model, errors = fit_latency_model(cols, y, "int8", 1, 224)
    assert model.features == ("flops", "acts")
    assert model.coefficients == pytest.approx((0.02, 1.1), rel=1e-8) and model.intercept == pytest.approx(1.5)
    assert model.held_out_error < 1e-9 and errors[("flops",)] > 0.01
    np.testing.assert_allclose(model.predict(cols["flops"], cols["params"], cols["acts"]), y, rtol=1e-9)


def test_held_out_error_equals_an_independent_k_fold():
    cols, y = _data(noise=0.1, seed=3)
    fold_of = np.random.default_rng(0).permutation(len(y)) % 5  # the documented fold assignment
    errs = np.empty(len(y))
    for k in range(5):
        tr, te = fold_of != k, fold_of == k
        a = np.column_stack([np.ones(tr.sum()), cols["flops"][tr] / 1e6])
        coef = np.linalg.lstsq(a, y[tr], rcond=None)[0]
        errs[te] = np.abs((coef[0] + coef[1] * cols["flops"][te] / 1e6) / y[te] - 1)
    assert cross_validated_error(cols, y, ("flops",)) == pytest.approx(float(np.median(errs)), rel=1e-12)


def test_latency_models_round_trip_through_json(tmp_path):
    m = LatencyModel("float32", 2, 224, ("flops", "acts"), (0.01, 0.5), 2.0, 0.05, 30)
    path = str(tmp_path / "models.json")
    save_models(path, [m])
    assert load_model(path, "float32@2") == m
    with pytest.raises(ValueError, match="'int8@1' is not in"):
        load_model(path, "int8@1")
    with pytest.raises(ValueError, match="features"):
        LatencyModel("int8", 1, 224, ("macs",), (1.0,), 0.0)


def test_latency_budget_keeps_exactly_the_predicted_range():
    model = LatencyModel("int8", 1, 224, ("flops", "acts"), (0.03, 1.0), 0.5)
    pop = sample("regnetx", 60, seed=1, flops=(200e6, 1600e6), latency=(20.0, 25.0), latency_model=model)
    ms = [0.5 + 0.03 * s.complexity.flops / 1e6 + 1.0 * s.complexity.acts / 1e6 for s in pop]
    assert len(pop) == 60 and all(20.0 <= x <= 25.0 for x in ms)
    unbudgeted = sample("regnetx", 200, seed=1, flops=(200e6, 1600e6))
    outside = [s for s in unbudgeted if not 20 <= model.predict(s.complexity.flops, 0, s.complexity.acts) <= 25]
    assert outside  # the budget does remove networks
    with pytest.raises(ValueError, match="latency_model"):
        sample("regnetx", 2, latency=(1, 2))
    with pytest.raises(ValueError, match="fitted at input size 224"):
        sample("regnetx", 2, latency=(1, 2), latency_model=model, input_size=32, stem_stride=1)


def fake_measure(spec):
    """Deterministic stand-in for latency_bench.measure: ms grow with the spec's flops."""
    from keras_regnet.complexity import complexity

    delay = float(os.environ.get("FAKE_MEASURE_SECONDS", "0"))
    if delay:
        time.sleep(delay)
    cx = complexity(spec, 32, classes=10)
    ms = 0.1 + cx.flops / 1e7 + cx.acts / 1e6
    return {"litert": {"int8@1": {"median_ms": ms}, "float32@1": {"median_ms": 2 * ms}},
            "tf": {"batch_size": 8, "median_ms": 8 * ms}, "tflite_bytes": {"int8": 1}, "measure_s": delay}


SETTING = {"image_size": 32, "classes": 10, "threads": [1], "formats": ["float32", "int8"], "calibration_images": 2,
           "tf_batch_size": 8, "timing": {"warmup": 1, "min_runs": 2, "max_runs": 3, "max_seconds": 1.0,
                                          "target_rse": 0.5}, "zoo": []}


def _population(n=12):
    return sample("regnetx", n, seed=0, flops=(1e6, 8e6), input_size=32, stem_stride=1, classes=10)


def test_latency_file_is_append_only_resumable_and_refuses_other_settings(tmp_path):
    from design_lab.latency import run

    d = str(tmp_path / "lat")
    pop = _population(6)
    run(d, pop, SETTING, (0, 2), report=lambda m: None, measure=fake_measure)
    res = run(d, pop, SETTING, (1, 2), report=lambda m: None, measure=fake_measure)
    again = run(d, pop, SETTING, (0, 1), report=lambda m: None, measure=lambda spec: pytest.fail("re-measured"))
    recs = again.load()
    assert sorted(r["index"] for r in recs) == list(range(6)) and res.path == again.path
    assert all(r["complexity"]["flops"] == s.complexity.flops for r, s in zip(sorted(recs, key=lambda r: r["index"]), pop))
    with pytest.raises(ValueError, match="image_size: stored 32 vs given 64"):
        run(d, pop, {**SETTING, "image_size": 64}, (0, 1), measure=fake_measure)


def test_kill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    d = str(tmp_path / "lat")
    code = ("from tests.design_lab.test_latency import fake_measure, SETTING, _population\n"
            "from design_lab.latency import run\n"
            f"run({d!r}, _population(), SETTING, (0, 1), report=lambda m: print(m, flush=True), measure=fake_measure)\n")
    env = {**os.environ, "FAKE_MEASURE_SECONDS": "0.4"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    path = os.path.join(d, "latency.jsonl")
    deadline = time.time() + 60
    while time.time() < deadline and (not os.path.exists(path) or open(path).read().count("\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = open(path).read().count("\n")
    assert 3 <= first < 12
    subprocess.run([sys.executable, "-c", code], env={**os.environ}, cwd=ROOT, check=True, capture_output=True)
    lines = [json.loads(x) for x in open(path).read().splitlines()]
    assert sorted(r["index"] for r in lines) == list(range(12))  # every model exactly once


def test_analysis_reports_correlations_models_and_zoo(tmp_path):
    from design_lab.latency import run, zoo_population
    from design_lab.latency_report import analyze_latency

    d, z = str(tmp_path / "regnetx"), str(tmp_path / "zoo")
    run(d, _population(12), SETTING, (0, 1), report=lambda m: None, measure=fake_measure)
    zoo = zoo_population(["regnetx_200mf", "regnety_200mf"], 32, 10)
    run(z, zoo, {**SETTING, "zoo": ["regnetx_200mf", "regnety_200mf"]}, (0, 1), report=lambda m: None,
        measure=fake_measure)
    out = analyze_latency([d, z], ["regnetx", "zoo"], str(tmp_path / "analysis"))
    report = open(out["report"]).read()
    recs = [json.loads(x) for x in open(os.path.join(d, "latency.jsonl"))]
    f = np.array([r["complexity"]["flops"] for r in recs], dtype=float)
    y = np.array([r["litert"]["int8@1"]["median_ms"] for r in recs])
    r = stats.pearsonr(f, y).statistic
    rho = stats.spearmanr(f, y).statistic
    assert f"| int8@1 | regnetx | 12 | {r:.3f} / {rho:.3f} |" in report
    assert "| regnetx_200mf |" in report and "zoo models measured: 2" in report
    models = json.load(open(out["models"]))
    assert set(models) == {"float32@1", "int8@1"} and models["int8@1"]["held_out_error"] < 1e-6
    assert {"latency_int8_t1", "latency_float32_t1", "latency_tf_batch8"} <= set(out["figures"])
    assert all(os.path.getsize(p) > 1000 for paths in out["figures"].values() for p in paths)
    # The CLI: latency-only directories get the latency analysis; other statistics are selectable.
    cli = subprocess.run([sys.executable, "-m", "design_lab.analyze", d, z, f"--out_dir={tmp_path / 'cli'}",
                          "--latency_stat=cpu_ms"], cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode != 0 and "hold no cpu_ms values" in cli.stderr  # the fake records lack cpu_ms
    cli = subprocess.run([sys.executable, "-m", "design_lab.analyze", d, z, f"--out_dir={tmp_path / 'cli'}"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert f"latency report: {tmp_path / 'cli'}/latency.md" in cli.stdout and "latency_int8_t1:" in cli.stdout


@pytest.mark.slow
def test_real_measurement_of_a_tiny_network():
    """The real path once: build, float32 + int8 TFLite in memory, LiteRT with XNNPACK, TF batch."""
    from keras_regnet.spec import make_spec
    from design_lab import latency_bench as bench

    spec = make_spec([1, 1], [16, 32], 8, 1.0, stem_width=8, stem_stride=1)
    policy = bench.TimingPolicy(warmup=1, min_runs=3, max_runs=5, max_seconds=2.0, target_rse=0.5)
    out = bench.measure(spec, 16, 10, (1,), ("float32", "int8"), bench.calibration_images(16, 2), policy, 4, policy)
    assert set(out["litert"]) == {"float32@1", "int8@1"}
    for v in out["litert"].values():
        assert v["delegate"] == "xnnpack" and v["median_ms"] > 0 and 3 <= v["runs"] <= 5
    assert out["tflite_bytes"]["int8"] < out["tflite_bytes"]["float32"]
    assert out["tf"]["batch_size"] == 4 and out["tf"]["median_ms"] > 0


def test_timing_stops_at_the_target_relative_standard_error():
    from design_lab.latency_bench import TimingPolicy, summarize_times, time_calls

    s = summarize_times([1.0, 1.0, 1.1, 0.9, 10.0], 0.05)
    t = np.array([1.0, 1.0, 1.1, 0.9, 10.0])
    mad = np.median(np.abs(t - 1.0))
    assert s["median_ms"] == 1.0 and s["cv_robust"] == pytest.approx(1.4826 * mad)
    assert s["rse"] == pytest.approx(1.2533 * 1.4826 * mad / np.sqrt(5)) and s["cv"] > 1
    assert s["min_ms"] == 0.9 and "cpu_ms" not in s
    calls = []
    out = time_calls(lambda: calls.append(1), TimingPolicy(warmup=2, min_runs=4, max_runs=50, target_rse=0.99))
    assert 4 <= out["runs"] <= 50 and len(calls) == out["runs"] + 2 and out["cpu_ms"] >= 0
    with pytest.raises(ValueError, match="min_runs"):
        TimingPolicy(min_runs=1)


def test_default_flops_budget_scales_with_the_input_as_the_sweeps_does(tmp_path):
    from keras_regnet.design_space.sampler import PAPER_FLOPS
    from design_lab.latency import LATENCY_FLOPS, LatencyCliConfig, population
    from design_lab.sweep import SweepCliConfig, build_config
    from design_lab.sweep_runner import SweepConfig

    def stored_flops(sweep_dir):
        with open(os.path.join(sweep_dir, "config.json")) as f:
            return tuple(SweepConfig.from_dict(json.load(f)).flops_range)

    area = (64 / 2) ** 2 / (224 / 2) ** 2  # feature area after a stride-2 stem, 64px vs 224px
    opts = LatencyCliConfig(image_size=64, stem_stride=2, num_models=2, num_classes=10)
    population(str(tmp_path / "auto"), opts)
    latency = stored_flops(str(tmp_path / "auto"))
    sweep = tuple(build_config(SweepCliConfig(image_size=64, stem_stride=2)).flops_range)
    assert latency == (round(200e6 * area), round(1.6e9 * area)) == (16326531, 130612245)
    assert [x / b for x, b in zip(latency, LATENCY_FLOPS)] == pytest.approx([x / b for x, b in zip(sweep, PAPER_FLOPS)],
                                                                              rel=1e-6)
    population(str(tmp_path / "given"), LatencyCliConfig(image_size=64, stem_stride=2, num_models=1, num_classes=10,
                                                         flops_range="10M,20M"))
    assert stored_flops(str(tmp_path / "given")) == (10e6, 20e6)  # an explicit range is taken as given


def test_a_population_too_big_for_memory_is_refused_before_any_model_is_built(tmp_path, monkeypatch):
    from keras_regnet.complexity import complexity
    from keras_regnet.errors import ConfigError
    from design_lab import latency_bench
    from design_lab.latency import run

    monkeypatch.setattr(latency_bench, "build_random", lambda *a, **k: pytest.fail("a model was built"))
    pop = _population(6)
    setting = {**SETTING, "tf_batch_size": 64}
    costs = [complexity(s.spec, 32, classes=10) for s in pop]
    need = [1.25 * 4 * (2 * c.params + 64 * c.acts) for c in costs]  # the documented estimate
    biggest = int(np.argmax(need))
    with pytest.raises(ConfigError, match=rf"model {pop[biggest].index} .* needs about .* for the TF batch of 64, "
                                          r"but only 1 MiB is available; lower --tf_batch_size"):
        run(str(tmp_path / "small"), pop, setting, (0, 1), available_memory=2**20)
    assert not os.path.exists(tmp_path / "small" / "latency.jsonl")
    fits = run(str(tmp_path / "fits"), pop, setting, (0, 1), report=lambda m: None, measure=fake_measure,
               available_memory=int(np.ceil(max(need))))
    assert len(fits.load()) == 6
    with pytest.raises(ConfigError, match=f"model {pop[biggest].index} "):
        run(str(tmp_path / "fits2"), pop, setting, (0, 1), measure=fake_measure,
            available_memory=int(np.floor(max(need))) - 1)


def test_available_memory_falls_back_to_proc_meminfo(monkeypatch):
    psutil = pytest.importorskip("psutil")
    from design_lab.latency_memory import available_memory_bytes

    with_psutil = psutil.virtual_memory().available
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    fallback = available_memory_bytes()
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    assert 0 < fallback < total and abs(fallback - with_psutil) < 0.05 * total


def test_the_cli_refuses_an_oversized_tf_batch_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "design_lab.latency", "--zoo=regnetx_200mf,regnety_32gf",
                          "--tf_batch_size=1000000", f"--sweep_dir={tmp_path / 'z'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and not os.path.exists(tmp_path / "z" / "latency.jsonl")
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "config error" in lines[0] and "model 1 (regnety_32gf" in lines[0]
    assert "for the TF batch of 1000000" in lines[0] and "is available" in lines[0]


PEAK_PROBE = """
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))
import tensorflow as tf
from keras_regnet.zoo import get_entry
from design_lab import latency_bench as bench
tf.zeros(1) + 1  # TensorFlow's runtime is up before the baseline
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak resident size (VmHWM), so import-time peaks do not count
before = status("VmRSS")
model = bench.build_random(get_entry("regnetx_200mf").spec(), 64, 10)
bench.tf_batch_latency(model, 64, 64, bench.TimingPolicy(warmup=1, min_runs=3, max_runs=3))
print(status("VmHWM") - before)
"""


@pytest.mark.slow
def test_memory_estimate_is_within_two_of_a_measured_tf_batch_peak():
    """Resident-memory growth from before the model is built to the peak of a timed batch of 64."""
    from keras_regnet.complexity import complexity
    from keras_regnet.zoo import get_entry
    from design_lab.latency_memory import tf_batch_peak_bytes

    out = subprocess.run([sys.executable, "-c", PEAK_PROBE], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ROOT})
    measured = int(out.stdout.strip().splitlines()[-1])
    estimate = tf_batch_peak_bytes(complexity(get_entry("regnetx_200mf").spec(), 64, classes=10), 64)
    assert 0.5 <= estimate / measured <= 2.0, (estimate, measured)
