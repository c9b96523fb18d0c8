"""The JAX engine against the TensorFlow engine and against itself on other device layouts.

- Two steps of each engine from the same weights and batches give the same weights (both under XLA).
- Two devices with per-device BN equal one device with ghost BN over the same halves, and two devices
  with --sync_bn equal one device: the decay is added once per step (a strong decay shows an N-times
  error), BN statistics are per device by default.
- Two processes on 127.0.0.1 train through jax.distributed.
- The step and its benchmark import no TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from test_jax_engine import ROOT, SMALL, TIMEOUT, jax_env, pytestmark  # noqa: F401 (skips without jax)

BATCH, SIZE, CLASSES, LR, DECAY, SMOOTHING = 32, 16, 10, 0.4, 0.01, 0.1


def _run_jax_script(code: str, devices: int = 1) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=jax_env(devices),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def test_two_steps_of_the_jax_engine_equal_two_steps_of_the_tensorflow_engine(tmp_path):
    import keras
    import tensorflow as tf

    from training import steps
    from training.models import build_model, resolve_model
    from training.recipe import WarmupCosine, make_optimizer

    spec, _ = resolve_model("regnetx_digits")  # grouped convs, BN, the classifier
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    model = build_model(spec, SIZE, CLASSES)
    for layer in model.layers:  # BN betas of 0 put the ReLU kink at the batch mean, where float32
        if isinstance(layer, keras.layers.BatchNormalization):  # rounding flips masks: move it off
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               mean, var])
    model.save_weights(str(tmp_path / "w0.weights.h5"))
    start = [w.copy() for w in model.get_weights()]
    images = rng.uniform(0, 255, (2, BATCH, SIZE, SIZE, 3)).astype("float32")
    labels = rng.integers(0, CLASSES, (2, BATCH)).astype("int64")
    np.savez(tmp_path / "batches.npz", images=images, labels=labels)

    step = tf.Variable(0, dtype=tf.int64)
    optimizer = make_optimizer(WarmupCosine(LR, 100, 10), 0.9, True, step=step)
    optimizer.build(model.trainable_variables)
    train = tf.function(steps.make_train_step(model, optimizer, BATCH, CLASSES, DECAY, SMOOTHING, xla=True))
    for i in range(2):  # the second step exercises the momentum and the schedule's next LR
        train(tf.constant(images[i]), tf.constant(labels[i]))
        step.assign_add(1)
    on_tf = model.get_weights()

    _run_jax_script(f"""
        import jax, numpy as np, keras
        from training import jax_step
        from training.models import build_model, resolve_model
        from training.recipe import WarmupCosine, make_optimizer
        spec, _ = resolve_model("regnetx_digits")
        model = build_model(spec, {SIZE}, {CLASSES})
        model.load_weights({str(tmp_path / "w0.weights.h5")!r})
        optimizer = make_optimizer(WarmupCosine({LR}, 100, 10), 0.9, True)
        optimizer.build(model.trainable_variables)
        step = jax.jit(jax_step.make_train_step(model, optimizer, global_batch={BATCH}, num_classes={CLASSES},
                                                weight_decay={DECAY}, label_smoothing={SMOOTHING}), donate_argnums=0)
        state = jax_step.initial_state(model, optimizer, None)
        data = np.load({str(tmp_path / "batches.npz")!r})
        for i in range(2):
            state, _ = step(state, data["images"][i], data["labels"][i])
        for v, value in zip(model.trainable_variables, state.trainable):
            v.assign(value)
        for v, value in zip(model.non_trainable_variables, state.non_trainable):
            v.assign(value)
        np.savez({str(tmp_path / "jax.npz")!r}, *model.get_weights())
    """)
    saved = np.load(tmp_path / "jax.npz")
    on_jax = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    moved = [_relative(t, s) for t, s in zip(on_tf, start)]
    assert max(moved) > 1e-2  # the steps changed the weights by far more than the tolerance below
    for t, j in zip(on_tf, on_jax):
        assert _relative(j, t) < 1e-4
    update_error = _relative(np.concatenate([(j - s).ravel() for j, s in zip(on_jax, start)]),
                             np.concatenate([(t - s).ravel() for t, s in zip(on_tf, start)]))
    assert update_error < 1e-3, update_error


TWO_DEVICE_RUNS = """
    import json, sys, numpy as np, keras, keras_regnet, jax
    from training.config import TrainConfig
    from training.run import run
    assert jax.device_count() == 2
    base = TrainConfig(model="regnetx_digits", image_size=16, batch_size=32, epochs=1, max_steps=5, lr=0.3,
                       warmup_epochs=0.0, weight_decay={decay}, verbose=0, engine="jax", deterministic=True)
    runs = {{
        "two_devices": dict(),
        "one_device_ghost": dict(strategy="one_device", bn_batch=16),
        "one_device_ghost_double_decay": dict(strategy="one_device", bn_batch=16, weight_decay={decay} * 2),
        "two_devices_sync": dict(sync_bn=True),
        "one_device": dict(strategy="one_device"),
    }}
    out = {{}}
    for name, changes in runs.items():
        result = run(base.replace(model_dir={root!r} + "/" + name, **changes))
        out[name + "_replicas"] = np.array(result["replicas"])
        model = keras.saving.load_model({root!r} + "/" + name + "/model.keras")
        for i, w in enumerate(model.get_weights()):
            out[f"{{name}}/{{i}}"] = w
    np.savez({root!r} + "/weights.npz", **out)
"""


def test_two_devices_equal_one_device_and_the_decay_is_added_once(tmp_path):
    decay = 0.05  # lr x decay = 1.5% of every weight per step: a doubled decay moves weights ~1e-2
    _run_jax_script(TWO_DEVICE_RUNS.format(decay=decay, root=str(tmp_path)), devices=2)
    saved = np.load(tmp_path / "weights.npz")
    assert int(saved["two_devices_replicas"]) == 2 and int(saved["one_device_replicas"]) == 1

    def weights(name: str) -> np.ndarray:
        keys = sorted((k for k in saved.files if k.startswith(name + "/")), key=lambda k: int(k.split("/")[1]))
        return np.concatenate([saved[k].ravel() for k in keys])

    two, ghost = weights("two_devices"), weights("one_device_ghost")
    assert _relative(two, ghost) < 1e-4  # per-device BN == ghost BN over the same halves
    assert _relative(weights("two_devices_sync"), weights("one_device")) < 1e-4  # --sync_bn == one device
    assert _relative(weights("one_device_ghost_double_decay"), ghost) > 100 * 1e-4  # decay is visible
    assert _relative(two, weights("one_device")) > 10 * 1e-4  # per-device BN is not whole-batch BN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_through_jax_distributed(tmp_path):
    model_dir, port = str(tmp_path / "run"), _free_port()
    procs = []
    for index in range(2):
        cmd = [sys.executable, "-m", "training.main", "--engine=jax", *SMALL, "--epochs", "1", "--max_steps", "4",
               f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={index}",
               "--model_dir", model_dir]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=jax_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert metrics["replicas"] == 2 and metrics["steps"] == 4 and np.isfinite(metrics["loss"])
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
    assert not os.path.exists(os.path.join(model_dir, "tmp"))  # only the chief writes


BLOCK_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; "


def test_the_step_and_its_gpu_benchmark_run_without_tensorflow():
    bench = os.path.join(ROOT, "benchmarks", "gpu_step.py")
    code = (BLOCK_TENSORFLOW + "import runpy; sys.argv = ['gpu_step.py', '--models=regnetx_digits', '--batch=8', "
            "'--image_size=16', '--classes=10', '--steps=2', '--warmup=1', '--peer=none']; "
            f"runpy.run_path({bench!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=jax_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("regnetx_digits"))
    img_s = float(row.split()[-6])
    assert img_s > 0 and "keras_regnet (JAX engine)" in row
    assert "'tensorflow'" not in proc.stderr
    imports = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW + "import training.jax_step, training.jax_devices"],
                             cwd=ROOT, env=jax_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert imports.returncode == 0, imports.stderr[-2000:]


@pytest.mark.parametrize("flags, message", [
    (["--xla=off"], "--xla=off is a TensorFlow-engine option"),
    (["--strategy=tpu"], "--strategy=tpu is a tf.distribute strategy"),
    (["--mixed_precision=float16"], "--mixed_precision=float16 needs dynamic loss scaling"),
    (["--coordinator_address=127.0.0.1:1"], "needs --num_processes and --process_id"),
])
def test_jax_engine_flag_errors_are_one_line(tmp_path, flags, message):
    cmd = [sys.executable, "-m", "training.main", "--engine=jax", *SMALL, *flags, "--model_dir", str(tmp_path)]
    env = {k: v for k, v in jax_env().items() if not k.startswith("JAX_")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
