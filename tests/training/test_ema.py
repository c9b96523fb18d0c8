"""EMA of weights: the closed form after k steps, on one device and on two mirrored replicas,
exact resume, EMA eval/export, and the --ema_decay flag checks."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest
from tests.helpers import prefetch
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)
DECAY = 0.6
STEPS = 3


def closed_form(history: list[np.ndarray], decay: float) -> np.ndarray:
    """d^k w0 + sum_i (1 - d) d^(k - i) w_i: the average after k updates starting at w0."""
    k = len(history) - 1
    total = decay ** k * history[0]
    for i in range(1, k + 1):
        total = total + (1 - decay) * decay ** (k - i) * history[i]
    return total


# Shared by the in-process test and the mirrored subprocess: train STEPS steps recording the
# averaged weights after every step, then compare the EMA with the closed form.
RECORDING_RUN = textwrap.dedent('''
    def recording_run(mode, model_dir, decay, steps, fit=True):
        import keras
        from training.core.config import TrainConfig
        from training.data import make_source
        from training.engines.tensorflow.assembly import make_trainer
        from training.run import prepare
        from training.engines.tensorflow.devices import make_runtime

        cfg, spec, _ = prepare(TrainConfig(model="regnetx_digits", image_size=16, batch_size=32,
                                           epochs=1, max_steps=steps, model_dir=model_dir,
                                           verbose=0, ema_decay=decay, deterministic=True))
        keras.utils.set_random_seed(0)
        trainer = make_trainer(cfg, make_runtime(mode, "off", "off"), make_source(cfg), spec)
        first = lambda v: (getattr(v, "values", None) or (v,))[0].numpy()
        history = [[first(w) for w in trainer.ema._weights]]
        step = trainer.train_step

        def recorded(iterator):
            out = step(iterator)
            history.append([first(w) for w in trainer.ema._weights])
            return out

        trainer.train_step = recorded
        if fit:  # the whole loop: train, checkpoint, evaluate (EMA and raw)
            return trainer, history, trainer.fit()
        trainer.restore_or_start()  # a fresh run: writes config.json, step 0
        iterator = trainer.feed.train(0, 0, steps)  # just the distributed steps, no eval
        for _ in range(steps):
            trainer.train_step(iterator)
        return trainer, history, None
''')
exec(RECORDING_RUN)  # defines recording_run for the in-process tests


def test_ema_after_k_steps_equals_the_closed_form_and_is_evaluated_and_exported(tmp_path):
    import keras

    trainer, history, metrics = recording_run("one_device", str(tmp_path), DECAY, STEPS)  # noqa: F821
    assert len(history) == STEPS + 1 and len(trainer.ema.shadows) > 50  # weights + BN statistics
    for i, shadow in enumerate(trainer.ema.shadows):
        expected = closed_form([h[i] for h in history], DECAY)
        np.testing.assert_allclose(shadow.numpy(), expected, rtol=1e-5, atol=1e-6)
    # After the EMA eval the model holds its own (raw) weights again.
    for w, raw in zip(trainer.ema._weights, history[-1]):
        np.testing.assert_array_equal(w.numpy(), raw)
    assert metrics["eval_weights"] == "ema" and metrics["raw_top1_err"] != metrics["top1_err"]
    exported = keras.models.load_model(trainer.export())
    shadows = {id(w): s for w, s in zip(trainer.ema._weights, trainer.ema.shadows)}
    by_path = {w.path: shadows[id(getattr(w, "value", w))] for w in trainer.model.weights
               if id(getattr(w, "value", w)) in shadows}
    for w in exported.weights:
        if w.path in by_path:
            np.testing.assert_allclose(np.asarray(w.numpy()), by_path[w.path].numpy(), atol=1e-7)


def test_resume_restores_the_ema_state_and_continues_it_exactly(tmp_path):
    from training.core.config import TrainConfig
    from training.data import make_source
    from training.engines.tensorflow.assembly import make_trainer
    from training.run import prepare
    from training.engines.tensorflow.devices import make_runtime

    import tensorflow as tf

    first, _, _ = recording_run("one_device", str(tmp_path / "run"), DECAY, 2, fit=False)  # noqa: F821
    first.save_checkpoint()
    saved = [s.numpy() for s in first.ema.shadows]
    stored = [n for n, _ in tf.train.list_variables(first.manager.latest_checkpoint) if n.startswith("ema/")]
    assert len(stored) == len(saved)  # the shadows only, not a second copy of the weights
    cfg, spec, _ = prepare(TrainConfig(model="regnetx_digits", image_size=16, batch_size=32, epochs=1,
                                       max_steps=4, model_dir=str(tmp_path / "run"), verbose=0,
                                       ema_decay=DECAY, deterministic=True))
    again = make_trainer(cfg, make_runtime("one_device", "off", "off"), make_source(cfg), spec)
    fresh = [s.numpy() for s in again.ema.shadows]
    assert again.restore_or_start() == 2
    assert any(not np.allclose(a, b) for a, b in zip(saved, fresh))  # restoring changes them
    for restored, value in zip(again.ema.shadows, saved):
        np.testing.assert_array_equal(restored.numpy(), value)
    # Steps 3-4 after the resume give the same average as 4 steps without interruption.
    iterator = again.feed.train(0, 2, 2)
    for _ in range(2):  # as the loop does: each step advances the step counter (the LR reads it)
        again.train_step(iterator)
    straight, _, _ = recording_run("one_device", str(tmp_path / "straight"), DECAY, 4, fit=False)  # noqa: F821
    for resumed, continuous in zip(again.ema.shadows, straight.ema.shadows):
        np.testing.assert_allclose(resumed.numpy(), continuous.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="--ema_decay=0.9 differs from the run being resumed"):
        make_trainer(cfg.replace(ema_decay=0.9), make_runtime("one_device", "off", "off"),
                     make_source(cfg), spec).restore_or_start()


MIRRORED = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
''') + RECORDING_RUN + textwrap.dedent('''
    trainer, history, _ = recording_run("mirrored", sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), fit=False)
    gap, err = 0.0, 0.0
    for i, shadow in enumerate(trainer.ema.shadows):
        copies = [c.numpy() for c in shadow.values]
        gap = max([gap] + [float(np.abs(c - copies[0]).max()) for c in copies])
        k = len(history) - 1
        expected = DECAY ** k * history[0][i] + sum(
            (1 - DECAY) * DECAY ** (k - j) * history[j][i] for j in range(1, k + 1))
        err = max(err, float(np.abs(copies[0] - expected).max()))
    json.dump({"replicas": len(trainer.ema.shadows[0].values), "gap": gap, "err": err},
              open(sys.argv[1], "w"))
''').replace("DECAY", "float(sys.argv[3])")


@pytest.fixture(scope="module", autouse=True)
def mirrored_run(request, tmp_path_factory):
    """The two-replica subprocess, started with the module (when its test is selected), so that it runs
    beside the in-process EMA tests; -> (its result file, the finished process)."""
    tmp_path = tmp_path_factory.mktemp("mirrored_ema")
    script = tmp_path / "mirrored_ema.py"
    script.write_text(MIRRORED)
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    out = tmp_path / "result.json"
    command = [sys.executable, str(script), str(out), str(tmp_path / "run"), str(DECAY), str(STEPS)]
    runs = prefetch.Prefetch(lambda _: prefetch.run(command, cwd=ROOT, env=env, timeout=300), ["mirrored"] if
                             prefetch.selected(request, "test_two_mirrored_replicas_keep_identical_ema_equal_to_the_closed_form")
                             else [])
    yield lambda: (out, runs.get("mirrored"))
    runs.close()


def test_two_mirrored_replicas_keep_identical_ema_equal_to_the_closed_form(mirrored_run):
    out, done = mirrored_run()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2 and result["gap"] == 0.0
    assert result["err"] < 1e-5


@pytest.mark.parametrize("value", [1.0, -0.1, 1.5, float("nan")])
def test_ema_decay_outside_0_1_is_a_one_line_error_naming_the_flag(value):
    from training.core.config import TrainConfig, validate

    with pytest.raises(ValueError, match=r"^--ema_decay must be in \[0, 1\)") as info:
        validate(TrainConfig(ema_decay=value))
    assert "\n" not in str(info.value)

