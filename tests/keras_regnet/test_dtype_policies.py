"""Every dtype policy trains: float64 (fit, training.engines.tensorflow.step, ghost and precise BN, JAX with x64), and the
float32 and mixed_bfloat16 whole-model gradients are held to a float64 twin with the same weights."""

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import keras_regnet  # noqa: E402
from keras_regnet.layers import FusedBatchNormalization  # noqa: E402
from keras_regnet.resolve import resolve_spec  # noqa: E402
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


def _under(policy, make):
    keras.config.set_dtype_policy(policy)
    try:
        return make()
    finally:
        keras.config.set_dtype_policy("float32")


def _digits_model(name, policy, **kwargs):
    return _under(policy, lambda: keras_regnet.build(resolve_spec(name), input_shape=(16, 16, 3), classes=10,
                                                     classifier_activation=None, **kwargs))


@pytest.mark.parametrize("builder, size", [
    (keras_regnet.RegNetX200MF, 32),  # the script
    (lambda **kwargs: keras_regnet.build(resolve_spec("regnety_digits"), **kwargs), 16)])
def test_float64_fit_trains(builder, size):
    model = _under("float64", lambda: builder(input_shape=(size, size, 3), classes=10))
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)), np.arange(4), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert {w.dtype for w in model.weights} == {"float64"}
    assert sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)) > 0.9 * len(before)


def test_mixed_float16_fit_trains_where_tensorflow_has_no_float16_grouped_gradient():
    # TensorFlow's CPU kernels (oneDNN's included) have no float16 grouped-conv gradient.
    model = _under("mixed_float16", lambda: keras_regnet.build(resolve_spec("regnety_digits"),
                                                               input_shape=(16, 16, 3), classes=10))
    model.compile(keras.optimizers.SGD(0.02), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    losses = model.fit(rng.uniform(0, 255, (8, 16, 16, 3)), np.arange(8) % 10, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_float64_train_step_with_ghost_and_precise_batch_norm():
    from training.engines.tensorflow import precise_bn
    from training.engines.tensorflow import step as steps

    keras.utils.set_random_seed(0)
    model = _digits_model("regnety_digits", "float64", bn_batch=2)
    strategy = tf.distribute.get_strategy()
    train = steps.make_train_step(model, keras.optimizers.SGD(0.01), 4, 10, 5e-5, 0.1, xla=False)
    run = steps.distributed(strategy, train, average=model.non_trainable_variables)
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices((rng.uniform(0, 255, (8, 16, 16, 3)), np.arange(8) % 10))
    iterator = iter(data.batch(4).repeat())
    losses = [float(run(iterator).loss_sum) for _ in range(2)]
    assert np.all(np.isfinite(losses))
    precise_bn.recompute(precise_bn.make_statistics_step(strategy, model), model, iterator, num_batches=2)
    for layer in precise_bn.batch_norm_layers(model):
        assert layer.moving_mean.dtype == "float64" and np.all(np.isfinite(layer.moving_variance.numpy()))


def test_fused_batch_norm_computes_float64_in_float64():
    x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (4, 5, 5, 6)), tf.float64)
    fused, stock = (cls(dtype="float64") for cls in (FusedBatchNormalization, keras.layers.BatchNormalization))
    # float32 statistics (the fused kernel's) would differ by ~1e-7; float64 ones agree to rounding.
    np.testing.assert_allclose(fused(x, training=True).numpy(), stock(x, training=True).numpy(), atol=1e-12)
    np.testing.assert_allclose(fused.moving_variance.numpy(), stock.moving_variance.numpy(), rtol=1e-12)
    assert not fused._fusable(tf.cast(x, tf.float32), None)  # its statistics are float64
    kept = FusedBatchNormalization()
    kept.build(x.shape)
    assert kept._fusable(tf.cast(x, tf.float32), None) and not kept._fusable(x, None)  # float32 keeps the kernel


def _gradients(model, x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, tf.cast(logits, tf.float64)))
    grads = tape.gradient(loss, model.trainable_variables)
    return tf.cast(logits, tf.float64).numpy(), np.concatenate([tf.cast(g, tf.float64).numpy().ravel() for g in grads])


# Measured (regnetx/regnety_digits, 16 px, batch 4, 5 seeds): float32 gradient 1.7e-6 to 2.7e-6 relative L2,
# logits within 6e-7; mixed_bfloat16 0.30 to 0.42 and 1.2e-2 (Keras' own BatchNormalization: the same).
@pytest.mark.parametrize("name", ["regnetx_digits", "regnety_digits"])
@pytest.mark.parametrize("policy, gradient_tolerance, logit_tolerance", [
    ("float32", 1e-4, 1e-5), ("mixed_bfloat16", 0.6, 0.04)])
def test_gradients_are_held_to_a_float64_twin(name, policy, gradient_tolerance, logit_tolerance):
    keras.utils.set_random_seed(0)
    reference = _digits_model(name, "float64")
    model = _digits_model(name, policy)
    model.set_weights(reference.get_weights())
    errors = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x, y = rng.uniform(0, 255, (4, 16, 16, 3)), rng.integers(0, 10, 4)
        logits64, grads64 = _gradients(reference, tf.constant(x, tf.float64), y)
        logits, grads = _gradients(model, tf.constant(x, tf.float32), y)
        np.testing.assert_allclose(logits, logits64, atol=logit_tolerance)  # every seed
        errors.append(np.linalg.norm(grads - grads64) / np.linalg.norm(grads64))
    assert np.median(errors) < gradient_tolerance, errors  # a rare flipped ReLU mask cannot fail it


JAX_FLOAT64_FIT = """
import jax, keras, numpy as np
import keras_regnet
from keras_regnet.resolve import resolve_spec
keras.config.set_dtype_policy("float64")
build = lambda: keras_regnet.build(resolve_spec("regnetx_digits"), input_shape=(16, 16, 3), classes=10)
try:
    build()
    raise SystemExit("built a float64 model with jax_enable_x64 off")
except ValueError as err:
    print("refused:", err)
jax.config.update("jax_enable_x64", True)
model = build()
model.compile("sgd", "sparse_categorical_crossentropy")
loss = model.fit(np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)), np.arange(4), verbose=0).history["loss"]
assert np.isfinite(loss[0]) and model.trainable_weights[0].value.dtype == np.float64, loss
"""


def test_jax_float64_fit_needs_x64_and_says_how_to_turn_it_on():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", JAX_FLOAT64_FIT], env=env, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    refusal = next(line for line in result.stdout.splitlines() if line.startswith("refused:"))
    assert "jax_enable_x64" in refusal and "JAX_ENABLE_X64=1" in refusal and "'float64'" in refusal
