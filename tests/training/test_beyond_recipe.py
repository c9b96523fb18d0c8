"""Options beyond the paper's recipe (issue 38), on both engines: no decay on BN parameters and biases,
AdamW's decoupled decay, gradient accumulation equal to one step with ghost BN, and their flags' errors.

Each scenario runs the engine's own train step (training.engines.<engine>.step.make_train_step) from the
same weights and batches: in process on TensorFlow, in one subprocess with KERAS_BACKEND=jax for JAX.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tests.helpers import prefetch
from tests.training.test_jax_engine import ROOT, TIMEOUT, jax_env

BATCH, SIZE, CLASSES, LR = 32, 16, 10, 0.1
STRONG_DECAY = 2.0  # lr x decay = 20% of every decayed weight in one step: impossible to miss
ACCUM, MICRO = 4, 8  # 4 micro-batches of 8 = one step of 32 with ghost BN groups of 8
ACCUM_TOLERANCE = 1e-5  # the bound, relative

# The scenario, written once for both engines: `run_steps` is the engine's; the rest is shared.
SCENARIO = """
import numpy as np, keras
from keras_regnet import make_spec
from training.core.models import build_model
from training.core.recipe import WarmupCosine, make_optimizer, is_decayed

def scenario(run_steps, root):
    spec = make_spec(depths=[1, 2], widths=[8, 16], group_widths=8, block="x", stem_width=8, name="tiny")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, {BATCH}, {SIZE}, {SIZE}, 3)).astype("float32")
    labels = rng.integers(0, {CLASSES}, (2, {BATCH})).astype("int32")

    models = {{}}

    def start(bn_batch=None, drop_path_rate=0.0):
        # the model of these options (built once), its weights reset to the same start
        key = (bn_batch, drop_path_rate)
        if key in models:
            model, initial = models[key]
            model.set_weights(initial)
            return model
        model = build_model(spec, {SIZE}, {CLASSES}, bn_batch=bn_batch, drop_path_rate=drop_path_rate)
        r = np.random.default_rng(1)
        for layer in model.layers:  # non-zero betas and biases, so a decay on them would show
            weights = layer.get_weights()
            if isinstance(layer, keras.layers.Conv2D):
                layer.set_weights([r.normal(0, 0.5, w.shape) for w in weights])
            elif isinstance(layer, keras.layers.BatchNormalization):
                g, b, m, v = weights
                layer.set_weights([r.uniform(0.5, 1.5, g.shape), r.normal(0, 0.3, b.shape), m, v])
            elif isinstance(layer, keras.layers.Dense):
                layer.set_weights([r.normal(0, 0.1, weights[0].shape), r.normal(0, 0.3, weights[1].shape)])
        models[key] = (model, model.get_weights())
        return model

    def weights(model, state):
        values = state if state is not None else [v.numpy() for v in model.trainable_variables]
        return [np.asarray(v) for v in values]

    out = {{}}
    for kind in ("sgd", "adamw"):
        for decay, norm_and_bias in ((0.0, True), ({STRONG_DECAY}, True), ({STRONG_DECAY}, False)):
            model = start()
            no_decay = [] if norm_and_bias else [v for v in model.trainable_variables if not is_decayed(v)]
            opt = make_optimizer(WarmupCosine({LR}, 100, 0), 0.9, True, kind=kind,
                                 weight_decay=decay if kind == "adamw" else 0.0, no_decay=no_decay)
            state = run_steps(model, opt, images[:1], labels[:1], weight_decay=decay if kind == "sgd" else 0.0,
                              decay_norm_and_bias=norm_and_bias, accum_steps=1)
            key = f"{{kind}}_{{decay}}_{{norm_and_bias}}"
            for i, w in enumerate(weights(model, state)):
                out[f"{{key}}/{{i}}"] = w
        out["decayed"] = np.array([is_decayed(v) for v in model.trainable_variables])
    for name, accum in (("ghost", 1), ("accumulated", {ACCUM})):
        model = start({MICRO})
        opt = make_optimizer(WarmupCosine({LR}, 100, 0), 0.9, True)
        state = run_steps(model, opt, images, labels, weight_decay=0.01, decay_norm_and_bias=True,
                          accum_steps=accum)
        out[name] = np.concatenate([w.ravel() for w in weights(model, state)])
    model = start(drop_path_rate=0.5)  # stochastic depth trains under the engine's compiled step
    opt = make_optimizer(WarmupCosine({LR}, 100, 0), 0.9, True)
    state = run_steps(model, opt, images, labels, weight_decay=0.0, decay_norm_and_bias=True, accum_steps=1)
    out["drop_path_finite"] = np.array(all(np.isfinite(w).all() for w in weights(model, state)))
    np.savez(root + "/out.npz", **out)
""".format(BATCH=BATCH, SIZE=SIZE, CLASSES=CLASSES, LR=LR, STRONG_DECAY=STRONG_DECAY, MICRO=MICRO, ACCUM=ACCUM)

JAX_RUN = """
import jax
from training.engines.jax import step as jax_step

def run_steps(model, opt, images, labels, **options):
    opt.build(model.trainable_variables)
    step = jax.jit(jax_step.make_train_step(model, opt, global_batch=images.shape[1], num_classes={CLASSES},
                                            label_smoothing=0.0, **options))
    state = jax_step.initial_state(model, opt, None)
    for i in range(len(images)):
        state, _ = step(state, images[i], labels[i])
    return state.trainable

scenario(run_steps, {root!r})
"""


def tf_run_steps(model, opt, images, labels, **options):
    import tensorflow as tf

    from training.engines.tensorflow import step as steps

    opt.build(model.trainable_variables)
    train = tf.function(steps.make_train_step(model, opt, images.shape[1], CLASSES, options.pop("weight_decay"),
                                              0.0, False, **options))
    for i in range(len(images)):
        train(tf.constant(images[i]), tf.constant(labels[i]))
    return None


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """{engine: the scenario's saved arrays}: JAX in a subprocess started first, TensorFlow meanwhile here."""
    jax_root, tf_root = tmp_path_factory.mktemp("jax"), tmp_path_factory.mktemp("tf")
    code = SCENARIO + JAX_RUN.format(CLASSES=CLASSES, root=str(jax_root))
    pool = prefetch.Prefetch(lambda _: prefetch.run([sys.executable, "-c", code], cwd=ROOT, env=jax_env(1),
                                                    timeout=TIMEOUT), ["jax"])
    namespace: dict = {}
    exec(SCENARIO, namespace)
    namespace["scenario"](tf_run_steps, str(tf_root))
    proc = pool.get("jax")
    pool.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"tensorflow": dict(np.load(tf_root / "out.npz")), "jax": dict(np.load(jax_root / "out.npz"))}


def _moved(out: dict, key: str, base: str, i: int) -> float:
    return float(np.abs(out[f"{key}/{i}"] - out[f"{base}/{i}"]).max())


@pytest.mark.parametrize("engine", ["tensorflow", "jax"])
@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_without_decay_on_norm_and_bias_a_strong_decay_moves_only_kernels(engines, engine, kind):
    """One step with a strong decay against none, from the same weights and batch: with
    --nodecay_norm_and_bias only the kernels differ; with the default the BN gammas/betas and biases too."""
    out = engines[engine]
    decayed = out["decayed"]
    assert decayed.any() and (~decayed).any()
    for i, is_kernel in enumerate(decayed):
        masked = _moved(out, f"{kind}_{STRONG_DECAY}_False", f"{kind}_0.0_True", i)
        full = _moved(out, f"{kind}_{STRONG_DECAY}_True", f"{kind}_0.0_True", i)
        assert full > 1e-4, (i, full)  # the paper's recipe decays every weight
        if is_kernel:
            assert masked > 1e-4, (i, masked)
        else:
            assert masked == 0.0, (i, masked)


@pytest.mark.parametrize("engine", ["tensorflow", "jax"])
def test_accumulated_micro_batches_equal_one_step_with_ghost_bn(engines, engine):
    """--bn_batch=8 --accum_steps=4 (4 micro-batches of 8, one update; x2 steps) = --bn_batch=8 (one step of 32
    with ghost BN groups of 8), within 1e-5 relative."""
    out = engines[engine]
    a, b = out["accumulated"], out["ghost"]
    relative = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    print(f"{engine}: accumulated vs ghost-BN step, relative difference {relative:.2e}")
    assert relative < ACCUM_TOLERANCE
    assert bool(out["drop_path_finite"])


def test_the_engines_agree_on_the_masked_adamw_step(engines):
    """The same AdamW step with decoupled decay, kernels only, on both engines."""
    tf_out, jax_out = engines["tensorflow"], engines["jax"]
    n = len(tf_out["decayed"])
    for i in range(n):
        key = f"adamw_{STRONG_DECAY}_False/{i}"
        np.testing.assert_allclose(jax_out[key], tf_out[key], rtol=2e-4, atol=2e-5)


def test_adamw_decay_is_decoupled_as_torch():
    """AdamW's step: Adam's update plus w -= lr * wd * w (torch.optim.AdamW, transcribed below), not L2."""
    import keras

    from training.core.recipe import make_optimizer

    lr, wd, b1, b2, eps = 0.01, 0.3, 0.8, 0.99, 1e-8
    w0, g = np.array([1.0, -2.0, 0.5], np.float32), np.array([0.3, -0.1, 0.2], np.float32)
    w = keras.Variable(w0)
    opt = make_optimizer(lr, kind="adamw", betas=(b1, b2), weight_decay=wd)
    opt.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
    # torch/optim/adamw.py, step 1: p *= 1 - lr*wd; m = (1-b1) g; v = (1-b2) g^2;
    # p -= lr / (1 - b1) * m / (sqrt(v / (1 - b2)) + eps)
    m, v = (1 - b1) * g, (1 - b2) * g * g
    expected = w0 * (1 - lr * wd) - lr / (1 - b1) * m / (np.sqrt(v / (1 - b2)) + eps)
    np.testing.assert_allclose(np.asarray(w.numpy()), expected, rtol=1e-5)


@pytest.mark.parametrize("flags, message", [
    ({"optimizer": "adam"}, "--optimizer='adam' is not allowed; choose one of sgd, adamw"),
    ({"adam_beta1": 0.8}, "--adam_beta1/--adam_beta2 are used by --optimizer=adamw only"),
    ({"optimizer": "adamw", "adam_beta2": 1.0}, "--adam_beta2 must be in [0, 1)"),
    ({"drop_path_rate": 1.0}, "--drop_path_rate must be in [0, 1)"),
    ({"drop_path_rate": -0.1}, "--drop_path_rate must be in [0, 1)"),
    ({"accum_steps": 0}, "--accum_steps must be a positive integer, got 0"),
])
def test_bad_values_are_one_line_errors(flags, message):
    from training.core.config import TrainConfig, validate

    with pytest.raises(ValueError) as error:
        validate(TrainConfig(**flags))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_accumulation_splits_the_replica_batch_and_bn_batch_divides_the_micro_batch():
    from training.core.config import TrainConfig
    from training.core.parts import bn_images

    assert bn_images(TrainConfig(batch_size=64, accum_steps=4), replicas=2) == 8
    assert bn_images(TrainConfig(batch_size=64, accum_steps=4, sync_bn=True), replicas=2) == 16
    with pytest.raises(ValueError, match=r"--accum_steps=3 does not divide the per-replica batch of 32"):
        bn_images(TrainConfig(batch_size=64, accum_steps=3), replicas=2)
    with pytest.raises(ValueError, match=r"--bn_batch=16 does not divide the per-replica micro-batch of 8"):
        bn_images(TrainConfig(batch_size=64, accum_steps=4, bn_batch=16), replicas=2)


def test_new_flags_are_recorded_and_refuse_a_changed_resume():
    from training.core.config import TrainConfig
    from training.core.run_identity import RESUME_KEYS, check_same_run

    for key in ("optimizer", "adam_beta1", "adam_beta2", "decay_norm_and_bias", "drop_path_rate", "accum_steps"):
        assert key in RESUME_KEYS
    saved = json.loads(json.dumps({k: getattr(TrainConfig(), k) for k in RESUME_KEYS}))
    current = {**saved, "accum_steps": 2}
    with pytest.raises(ValueError, match="--accum_steps=2 differs"):
        check_same_run(saved, current, TrainConfig(accum_steps=2))
