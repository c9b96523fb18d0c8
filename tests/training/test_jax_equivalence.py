"""The JAX engine against the TensorFlow engine and against itself on other device layouts.

- Two steps of each engine from the same weights and batches give the same weights (both under XLA).
- Two devices with per-device BN equal one device with ghost BN over the same halves, and two devices
  with --sync_bn equal one device: the decay is added once per step (a strong decay shows an N-times
  error), BN statistics are per device by default.
- Two processes on 127.0.0.1 train through jax.distributed.
- The step and its benchmark import no TensorFlow.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tests.helpers import prefetch
from tests.training.test_jax_engine import ROOT, SMALL, TIMEOUT, jax_env, pytestmark, read_json  # noqa: F401 (skips without jax)

BATCH, SIZE, CLASSES, LR, DECAY, SMOOTHING = 32, 16, 10, 0.4, 0.01, 0.1


def _run_jax_script(code: str, devices: int = 1) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=jax_env(devices),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _run_jax_script_in(code: str, devices: int = 1):
    """A deferred `_run_jax_script`, for `runs` below."""
    return lambda: _run_jax_script(code, devices)


@pytest.fixture(scope="module", autouse=True)
def runs(request, tmp_path_factory):
    """The module's independent subprocess runs: those its selected tests need start with the module, side by
    side and beside the in-process test (each has its own directory and process); `runs(name)` -> (its
    directory, result)."""
    roots = {name: tmp_path_factory.mktemp(name) for name in RUNS}
    started = prefetch.Prefetch(lambda name: lambda: (roots[name], RUNS[name](roots[name])()),
                                [name for test in prefetch.selected(request, *NEEDS) for name in NEEDS[test]])
    yield started.get
    started.close()


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def test_two_steps_of_the_jax_engine_equal_two_steps_of_the_tensorflow_engine(tmp_path):
    import keras
    import tensorflow as tf

    from training.engines.tensorflow import step as steps
    from keras_regnet import resolve_spec
    from training.core.models import build_model
    from training.core.recipe import WarmupCosine, make_optimizer

    spec = resolve_spec("regnetx_digits")  # grouped convs, BN, the classifier
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
        from training.engines.jax import step as jax_step
        from keras_regnet import resolve_spec
        from training.core.models import build_model
        from training.core.recipe import WarmupCosine, make_optimizer
        spec = resolve_spec("regnetx_digits")
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
    flat = lambda arrays: np.concatenate([a.ravel() for a in arrays])  # noqa: E731
    assert _relative(flat(on_tf), flat(start)) > 1e-2  # the steps moved the weights far more than 1e-4
    for t, j in zip(on_tf, on_jax):
        assert _relative(j, t) < 1e-4
    update_error = _relative(flat(on_jax) - flat(start), flat(on_tf) - flat(start))
    assert update_error < 1e-3, update_error


TWO_DEVICE_STEPS = """
    import numpy as np, keras, jax
    from training.engines.jax import step as jax_step
    from training.engines.jax.devices import make_layout, replicate, shard_batch, to_host
    from keras_regnet import resolve_spec
    from training.core.models import build_model
    from training.core.recipe import WarmupCosine, make_optimizer
    assert jax.device_count() == 2
    spec = resolve_spec("regnetx_digits")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 10, (4, 32))
    out = {{}}
    # (step model's BN groups, device layout, weight decay) of each run; the batch is 32 on 2 devices.
    runs = {{"two_devices": (16, "auto", {decay}), "one_device_ghost": (16, "one_device", {decay}),
             "one_device_ghost_double_decay": (16, "one_device", 2 * {decay}),
             "two_devices_sync": (None, "auto", {decay}), "one_device": (None, "one_device", {decay})}}
    for name, (groups, devices, decay) in runs.items():
        keras.utils.set_random_seed(0)
        model = build_model(spec, 16, 10, bn_batch=groups)
        for layer in model.layers:  # BN betas of 0 put the ReLU kink at the batch mean (rounding flips masks)
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = layer.get_weights()
                r = np.random.default_rng(len(layer.name))
                layer.set_weights([gamma * r.uniform(0.5, 1.5, gamma.shape), r.normal(0, 0.3, beta.shape), mean, var])
        optimizer = make_optimizer(WarmupCosine(0.1, 100, 0), 0.9, True)
        optimizer.build(model.trainable_variables)
        layout = make_layout(devices)
        step = jax.jit(jax_step.make_train_step(model, optimizer, global_batch=32, num_classes=10, weight_decay=decay,
                                                label_smoothing=0.0), donate_argnums=0, out_shardings=layout.replicated)
        state = replicate(jax_step.initial_state(model, optimizer, None), layout)
        for i in range(4):
            state, _ = step(state, *shard_batch((images[i], labels[i]), layout))
        host = to_host(state)
        out[name] = np.concatenate([np.ravel(w) for w in (*host.trainable, *host.non_trainable)])
        out[name + "_devices"] = np.array(layout.devices)
    np.savez({root!r} + "/weights.npz", **out)
"""


TOLERANCE = 3e-4  # float32 reductions in another order over 4 steps


TWO_DEVICE_DECAY = 0.05  # lr x decay = 0.5% of every weight per step: a doubled decay moves weights ~1e-2


def test_two_devices_equal_one_device_and_the_decay_is_added_once(runs):
    tmp_path, _ = runs("two_devices")
    saved = np.load(tmp_path / "weights.npz")
    assert int(saved["two_devices_devices"]) == 2 and int(saved["one_device_devices"]) == 1
    two, ghost = saved["two_devices"], saved["one_device_ghost"]
    figures = {"two vs ghost": _relative(two, ghost), "sync vs one": _relative(saved["two_devices_sync"],
               saved["one_device"]), "double decay": _relative(saved["one_device_ghost_double_decay"], ghost),
               "per-device vs whole-batch BN": _relative(two, saved["one_device"])}
    print(figures)
    assert figures["two vs ghost"] < TOLERANCE, figures  # per-device BN == ghost BN over the same halves
    assert figures["sync vs one"] < TOLERANCE, figures  # --sync_bn == one device
    assert figures["double decay"] > 20 * TOLERANCE, figures  # an N-times decay would show
    assert figures["per-device vs whole-batch BN"] > 20 * TOLERANCE, figures


PRECISE_BN_ON_TWO_DEVICES = """
    import numpy as np, keras, jax
    from training.engines.jax import step as jax_step
    from training.engines.jax.devices import make_layout, replicate, shard_batch, to_host
    from keras_regnet import resolve_spec
    from training.core.models import build_model
    model = build_model(resolve_spec("regnetx_digits"), 16, 10, bn_batch=16)  # one BN group per device
    images = np.random.default_rng(0).uniform(0, 255, (32, 16, 16, 3)).astype("float32")
    images[:16] *= 0.2  # a dark half and a bright half: per-device moments differ from whole-batch ones
    layout = make_layout("auto")
    statistics, slots = jax_step.make_statistics_step(model)
    state = replicate(jax_step.initial_state(model, keras.optimizers.SGD(), None), layout)
    got = to_host(jax.jit(statistics)(state.trainable, state.non_trainable, shard_batch(images, layout)))
    # The reference: each BN layer's input, split into the two devices' halves, numpy moments per half.
    probe = keras.Model(model.inputs, [layer.input for layer in jax_step.batch_norm_layers(model)])
    features = [np.asarray(f, np.float64) for f in probe(images, training=True)]
    expected = []
    for f in features:
        halves = f.reshape(2, 16, *f.shape[1:])
        expected += [halves.mean(axis=(1, 2, 3)).mean(0), halves.var(axis=(1, 2, 3)).mean(0)]
    whole = [f.var(axis=(0, 1, 2)) for f in features]
    installed = jax_step.with_statistics(to_host(state.non_trainable), slots, got)
    layer = model.get_layer("s2_b1_bn_b")
    index = {{id(v): i for i, v in enumerate(model.non_trainable_variables)}}
    np.savez({out!r}, *got, expected=np.array(expected, dtype=object), whole=np.array(whole, dtype=object),
             mean=installed[index[id(layer.moving_mean)]], var=installed[index[id(layer.moving_variance)]],
             layer=np.array(jax_step.batch_norm_layers(model).index(layer)), devices=np.array(layout.devices))
"""


def test_precise_bn_on_two_devices_averages_the_devices_moments(runs):
    tmp_path, _ = runs("precise_bn")
    saved = np.load(tmp_path / "stats.npz", allow_pickle=True)
    assert int(saved["devices"]) == 2
    got = [saved[f"arr_{i}"] for i in range(len(saved["expected"]))]
    for g, e in zip(got, saved["expected"]):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    # Whole-batch moments (ignoring the devices' groups) are far from what is installed.
    gaps = [np.abs(w - g).max() / np.abs(g).max() for w, g in zip(saved["whole"], got[1::2])]
    assert max(gaps) > 0.1, gaps
    k = int(saved["layer"])  # and they land in that layer's moving mean and variance
    np.testing.assert_allclose(saved["mean"], got[2 * k], rtol=1e-6)
    np.testing.assert_allclose(saved["var"], got[2 * k + 1], rtol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(root):
    def run() -> str:
        model_dir, port = str(root / "run"), _free_port()
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
        return model_dir
    return run


def test_two_processes_train_through_jax_distributed(runs):
    _, model_dir = runs("two_processes")
    metrics = read_json(os.path.join(model_dir, "metrics.json"))
    assert metrics["replicas"] == 2 and metrics["steps"] == 4 and np.isfinite(metrics["loss"])
    assert os.path.exists(os.path.join(model_dir, "model.keras"))
    assert not os.path.exists(os.path.join(model_dir, "tmp"))  # only the chief writes


BLOCK_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; "


GPU_STEP = (BLOCK_TENSORFLOW + "import runpy; sys.argv = ['gpu_step.py', '--models=regnetx_digits', '--batch=8', "
            "'--image_size=16', '--classes=10', '--steps=2', '--warmup=1', '--peer=none']; "
            f"runpy.run_path({os.path.join(ROOT, 'benchmarks', 'gpu_step.py')!r}, run_name='__main__')")


def test_the_step_and_its_gpu_benchmark_run_without_tensorflow(runs):
    _, proc = runs("gpu_step")
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("regnetx_digits"))
    img_s = float(row.split()[-6])
    assert img_s > 0 and "keras_regnet (JAX engine, 1 dev)" in row
    assert "'tensorflow'" not in proc.stderr
    # The engine's other modules with TensorFlow blocked: tests/training/test_engine_layout.py.


@pytest.mark.parametrize("changes, message", [
    (dict(xla="off"), "--xla=off is a TensorFlow-engine option"),
    (dict(strategy="tpu"), "--strategy=tpu is a tf.distribute strategy"),
    (dict(num_processes=2, process_id=2), "--process_id=2 must be below --num_processes=2"),
])
def test_tensorflow_engine_options_given_to_the_jax_engine_are_config_errors(changes, message):
    from keras_regnet.errors import ConfigError
    from training.core.config import TrainConfig
    from training.core.engine_choice import check_jax_flags

    with pytest.raises(ConfigError, match=re.escape(message)):
        check_jax_flags(TrainConfig(**changes))


def test_float16_and_a_coordinator_without_processes_are_config_errors(monkeypatch):
    from keras_regnet.errors import ConfigError
    from training.engines.jax.devices import initialize_processes, make_layout
    from training.engines.jax.precision import resolve_policy

    with pytest.raises(ConfigError, match="--mixed_precision=float16 needs dynamic loss scaling"):
        resolve_policy("float16", make_layout("one_device"))
    assert resolve_policy("auto", make_layout("one_device")) == "float32"  # CPU
    for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="needs --num_processes and --process_id"):
        initialize_processes("127.0.0.1:1", None, None)


def test_the_cli_prints_a_jax_engine_error_in_one_line(runs):
    _, proc = runs("cli_xla_off")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--xla=off is a TensorFlow-engine option" in proc.stderr and "Traceback" not in proc.stderr
    # --engine=tensorflow wins over KERAS_BACKEND=jax: the flag is read before Keras is imported.
    root, proc = runs("cli_tensorflow")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_json(os.path.join(root, "tf", "metrics.json"))["engine"] == "tensorflow"


def _jax_process(*args: str):
    return lambda: subprocess.run([sys.executable, *args], cwd=ROOT, env=jax_env(), capture_output=True, text=True,
                                  timeout=TIMEOUT, check=False)


# The independent runs of this module, by name: root folder -> a deferred run, and which tests read which.
RUNS = {
    "two_devices": lambda root: _run_jax_script_in(TWO_DEVICE_STEPS.format(decay=TWO_DEVICE_DECAY, root=str(root)),
                                                   devices=2),
    "precise_bn": lambda root: _run_jax_script_in(PRECISE_BN_ON_TWO_DEVICES.format(out=str(root / "stats.npz")),
                                                  devices=2),
    "two_processes": _two_processes,
    "gpu_step": lambda root: _jax_process("-c", GPU_STEP),
    "cli_xla_off": lambda root: _jax_process("-m", "training.main", "--engine=jax", *SMALL, "--xla=off",
                                             "--model_dir", str(root)),
    "cli_tensorflow": lambda root: _jax_process("-m", "training.main", "--engine=tensorflow", *SMALL, "--max_steps=1",
                                                "--model_dir", str(root / "tf")),
}
NEEDS = {
    "test_two_devices_equal_one_device_and_the_decay_is_added_once": ("two_devices",),
    "test_precise_bn_on_two_devices_averages_the_devices_moments": ("precise_bn",),
    "test_two_processes_train_through_jax_distributed": ("two_processes",),
    "test_the_step_and_its_gpu_benchmark_run_without_tensorflow": ("gpu_step",),
    "test_the_cli_prints_a_jax_engine_error_in_one_line": ("cli_xla_off", "cli_tensorflow"),
}
