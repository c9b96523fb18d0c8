"""Sweep runner: append-only results, shards, skip-finished, and kill -9 then resume."""

import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from design_lab.sweep_results import ResultsFile
from design_lab.sweep_runner import SweepConfig, load_train_fn, parse_shard, prepare, run
from tests.helpers.paths import REPO_ROOT
from tests.helpers.quiet import assert_quiet

ROOT = str(REPO_ROOT)
TINY = dict(flops_range=(0.5e6, 3e6), image_size=16, stem_stride=1, stem_width=16, classes=10)


def fake_train(spec, *, seed=0, epochs=1, **kwargs):
    """A deterministic stand-in for training.api.train: error falls with log flops, plus seeded noise."""
    from keras_regnet.complexity import complexity

    delay = float(os.environ.get("FAKE_TRAIN_SECONDS", "0"))
    if delay:
        time.sleep(delay)
    flops = complexity(spec, kwargs.get("image_size", 32), classes=10).flops
    noise = ((seed * 2654435761) % 1000) / 1000.0
    top1 = 90.0 - 8.0 * math.log10(flops) + 3.0 * noise
    return {"top1_err": top1, "top5_err": top1 / 3, "train_time_s": delay, "epochs": epochs, "steps": 1,
            "model_dir": None}


def _config(num=8, space="regnetx", **train):
    return SweepConfig(space, num, seed=0, **TINY, train={"epochs": 1, **train})


def _lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


def test_results_file_appends_once_per_key_and_cuts_torn_tails(tmp_path):
    rf = ResultsFile(str(tmp_path / "r.jsonl"))
    assert rf.append({"index": 0, "v": 1}) and rf.append({"index": 1, "v": 2})
    assert not rf.append({"index": 0, "v": 3})  # already recorded: never duplicated
    with open(rf.path, "ab") as f:
        f.write(b'{"index": 2, "v": ')  # a crash in the middle of a write
    assert [r["index"] for r in rf.load()] == [0, 1]  # torn line ignored
    assert rf.append({"index": 2, "v": 4})
    lines = _lines(rf.path)
    assert lines[-1] == b"" and [json.loads(x)["index"] for x in lines[:-1]] == [0, 1, 2]


def _append_many(path, start):
    rf = ResultsFile(path)
    for k in range(start, start + 40):
        rf.append({"index": k % 50, "writer": start, "pad": "x" * 2000})


def test_concurrent_appends_from_processes_never_duplicate_or_interleave(tmp_path):
    path = str(tmp_path / "r.jsonl")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, s)) for s in (0, 10, 20, 30)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    raw = _lines(path)[:-1]
    keys = [json.loads(x)["index"] for x in raw]  # every line parses: no interleaving
    assert sorted(keys) == list(range(50))


def test_shards_split_the_sweep_and_reruns_skip_finished(tmp_path):
    calls = []

    def train(spec, **kw):
        calls.append(kw["seed"])
        return fake_train(spec, **kw)

    d = str(tmp_path / "sweep")
    p0 = run(d, _config(), train, (0, 2), report=lambda s: None)
    assert p0.shard_done == 4 and p0.done == 4
    p1 = run(d, _config(), train, (1, 2), report=lambda s: None)
    assert p1.done == 8 and len(calls) == 8
    records = ResultsFile(os.path.join(d, "results.jsonl")).load()
    assert sorted(r["index"] for r in records) == list(range(8))
    assert {r["shard"] for r in records} == {"0/2", "1/2"}
    assert all({"spec", "complexity", "top1_err", "top5_err", "train_time_s", "epochs", "seed"} <= set(r)
               for r in records)
    run(d, _config(), train, (0, 3), report=lambda s: None)  # re-sharded: nothing left to train
    assert len(calls) == 8


def test_a_restart_with_different_settings_is_refused(tmp_path):
    d = str(tmp_path / "sweep")
    prepare(d, _config())
    with pytest.raises(ValueError, match="num_models: stored 8 vs given 9"):
        prepare(d, _config(num=9))
    with pytest.raises(ValueError, match="train"):
        prepare(d, _config(lr=0.2))


def test_a_sweep_sampled_under_older_sampling_laws_is_not_resumed(tmp_path):
    """Before sampler version 2, b multiplied the width (inverted bottlenecks); such a sweep must not go on."""
    d = str(tmp_path / "sweep")
    prepare(d, _config())
    cfg = os.path.join(d, "config.json")
    with open(cfg) as f:
        stored = json.load(f)
    assert stored["sampler_version"] == 2
    del stored["sampler_version"]  # a config.json written by the old sampler
    with open(cfg, "w") as f:
        json.dump(stored, f)
    with pytest.raises(ValueError, match="sampler_version: stored None vs given 2"):
        prepare(d, _config())


def test_an_image_size_below_the_total_stride_is_refused_before_anything_is_written(tmp_path):
    """Every model would fail in the builder, and the written config would block a fixed restart."""
    d = str(tmp_path / "sweep")
    config = SweepConfig("regnetx", 2, seed=0, flops_range=None, image_size=8, stem_stride=1,
                         stem_width=16, classes=10, train={"epochs": 1})
    with pytest.raises(ValueError, match="image_size 8 is smaller than the sampled networks' total stride 16"):
        run(d, config, fake_train, report=lambda s: None)
    assert not os.path.exists(os.path.join(d, "config.json"))
    assert not os.path.exists(os.path.join(d, "samples.jsonl"))
    fixed = SweepConfig("regnetx", 2, seed=0, flops_range=None, image_size=16, stem_stride=1,
                        stem_width=16, classes=10, train={"epochs": 1})
    assert run(d, fixed, fake_train, report=lambda s: None).done == 2


def diverging_train(spec, *, seed=0, **kwargs):
    """fake_train, except that every model with an odd index diverges (deterministically)."""
    from training.core.divergence import Diverged

    if int(spec.name.rsplit("_", 1)[1]) % 2:
        raise Diverged(f"training loss became nan at step 3; stopped ({spec.name})")
    return fake_train(spec, seed=seed, **kwargs)


def test_a_diverged_model_is_recorded_and_the_sweep_finishes_and_resumes(tmp_path):
    """A NaN loss used to abort the sweep at that model, and every restart at the same model."""
    from design_lab.sweep_report import analyze

    d = str(tmp_path / "sweep")
    lines = []
    prog = run(d, _config(num=4), diverging_train, report=lines.append)
    assert prog.done == 4
    records = {r["index"]: r for r in ResultsFile(os.path.join(d, "results.jsonl")).load()}
    assert sorted(records) == [0, 1, 2, 3]
    for k in (1, 3):
        assert records[k]["diverged"] is True and records[k]["top1_err"] == 100.0
        assert "loss became nan" in records[k]["train_result"]["error"]
    assert "diverged" not in records[0] and records[0]["top1_err"] < 100
    assert any(line.startswith("model 1 diverged, recorded as top1_err=100.00%") for line in lines)
    assert run(d, _config(num=4), diverging_train, report=lambda s: None).trained == 0  # nothing retried
    report = open(analyze([d], str(tmp_path / "out"), repeats=20, normalized=False)["report"]).read()
    assert "| `" + d + "` | 2 |" in report and "Diverged models" in report


def test_other_trainer_errors_still_stop_the_sweep(tmp_path):
    def broken(spec, **kwargs):
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError, match="out of disk"):
        run(str(tmp_path / "sweep"), _config(num=2), broken, report=lambda s: None)


def test_non_finite_loss_is_a_divergence():
    pytest.importorskip("tensorflow")
    from training.core.divergence import Diverged
    from training.core.divergence import NonFiniteLoss

    assert issubclass(NonFiniteLoss, Diverged)


def test_progress_reports_counts_and_eta(tmp_path):
    lines = []
    run(str(tmp_path / "s"), _config(num=3), fake_train, report=lines.append)
    assert lines[0].startswith("sweep 0/3 models done")
    assert "this shard 3/3" in lines[-1] and "ETA 0:00:00" in lines[-1]


def test_bad_shard_and_train_fn_are_value_errors():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="train_fn"):
        load_train_fn("no_colon")
    with pytest.raises(ValueError, match="cannot load"):
        load_train_fn("design_lab.sweep_runner:nope")


def _cli(sweep_dir, *extra, env=None):
    return [sys.executable, "-m", "design_lab.sweep", f"--sweep_dir={sweep_dir}", "--space=anynetx_c",
            "--num_models=6", "--image_size=16", "--stem_width=16", "--flops_range=0.5M,3M",
            "--train_fn=tests.design_lab.test_sweep:fake_train", "--notensorboard", *extra]


def test_kill_mid_sweep_then_resume_loses_and_duplicates_nothing(tmp_path):
    d = str(tmp_path / "sweep")
    env = {**os.environ, "PYTHONPATH": ROOT, "FAKE_TRAIN_SECONDS": "0.4"}
    proc = subprocess.Popen(_cli(d), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    results = os.path.join(d, "results.jsonl")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(results) and len(ResultsFile(results).load()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(ResultsFile(results).load())
    assert 2 <= killed_at < 6, proc.stdout.read().decode()
    with open(results, "ab") as f:
        f.write(b'{"index": 5, "top1')  # as if the kill had torn a line
    out = subprocess.run(_cli(d), cwd=ROOT, env={**env, "FAKE_TRAIN_SECONDS": "0"}, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert f"sweep {killed_at}/6 models done" in out.stdout and "results:" in out.stdout
    assert_quiet(out)
    raw = _lines(results)
    assert raw[-1] == b""
    keys = [json.loads(x)["index"] for x in raw[:-1]]
    assert sorted(keys) == list(range(6))


def test_cli_flag_errors_name_the_flag(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run(_cli(tmp_path / "s", "--flops_range=400M"), cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert out.returncode != 0 and "--flops_range" in out.stderr
    out = subprocess.run(_cli(tmp_path / "s", "--shard=3/2"), cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "--shard" in out.stderr
