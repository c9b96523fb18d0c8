"""One harness over the zoo (as timm tests every registered model): each zoo builder at a small input
runs forward, takes a training step, exposes its pyramid, survives a .keras round trip and equals
its tf_keras twin.

The six smallest models run by default; the other 18 carry `zoo(full_only=True)` and run with
`python -m pytest tests/keras_regnet/test_zoo_harness.py -m zoo` (all 24). Each model is built once per module
(a parametrised module-scoped fixture, so pytest runs all checks of one model before the next).
"""

import contextlib

import keras
import numpy as np
import pytest

import keras_regnet

SIZE, CLASSES, BATCH = 64, 5, 4
_HARNESSED = [n for n in keras_regnet.list_models() if n not in ("regnety_64gf", "regnety_128gf", "regnety_256gf")]


def _by_flops() -> list[str]:
    """The zoo's names, smallest flops at 224 first (the SEER sizes, 281M-1283M params, are left to
    test_zoo_beyond_paper's analytic checks)."""
    return sorted(_HARNESSED, key=lambda n: keras_regnet.complexity(keras_regnet.get_entry(n).spec(), 224).flops)


SMALLEST = _by_flops()[:6]
PARAMS = [pytest.param(n, marks=pytest.mark.zoo if n in SMALLEST else pytest.mark.zoo(full_only=True))
          for n in _HARNESSED]


@pytest.fixture(scope="module", params=PARAMS)
def zoo_model(request):
    """(name, logits model at SIZE x SIZE built by the zoo's own function), built once per model."""
    name = request.param
    keras.utils.set_random_seed(0)
    builder = getattr(keras_regnet, keras_regnet.get_entry(name).function_name)
    model = builder(input_shape=(SIZE, SIZE, 3), classes=CLASSES, classifier_activation=None)
    yield name, model
    keras.backend.clear_session()


@contextlib.contextmanager
def _weights_restored(model):
    """Let a check change the shared model's weights; the next check sees them as built."""
    saved = [w.numpy() for w in model.weights]
    try:
        yield
    finally:
        for w, v in zip(model.weights, saved):
            w.assign(v)


def _images(seed=0, n=BATCH):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def test_forward_shape_and_finiteness(zoo_model):
    _, model = zoo_model
    logits = np.asarray(model(_images(), training=False))
    assert logits.shape == (BATCH, CLASSES) and np.isfinite(logits).all()
    assert np.ptp(logits, axis=0).max() > 0  # different images, different outputs


def test_one_training_step_moves_every_weight_and_lowers_the_loss(zoo_model):
    import tensorflow as tf

    name, model = zoo_model
    x, y = tf.constant(_images(1)), tf.constant([0, 1, 2, 3])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with _weights_restored(model):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        for w, g in zip(model.trainable_weights, grads):
            assert g is not None and np.isfinite(g.numpy()).all() and np.abs(g.numpy()).max() > 0, (name, w.path)
        # A step sized to lower the loss by 1% to first order (lr * |g|^2 = 0.01 loss), whatever the scale.
        lr = 0.01 * float(loss) / sum(float(tf.reduce_sum(g * g)) for g in grads)
        keras.optimizers.SGD(lr).apply_gradients(zip(grads, model.trainable_weights))
        assert float(loss_fn(y, model(x, training=True))) < float(loss) * (1 - 0.005), name


def test_pyramid_outputs_follow_the_stride_law(zoo_model):
    name, model = zoo_model
    spec = keras_regnet.get_entry(name).spec()
    widths = [spec.stem_width, *spec.widths]  # P1 is the stem, P2..P5 the four stages
    features = keras_regnet.feature_extractor(model)(_images())
    assert sorted(features) == ["P1", "P2", "P3", "P4", "P5"]
    for level in range(1, 6):
        side = SIZE // 2 ** level
        assert tuple(model.pyramid_outputs[f"P{level}"].shape) == (None, side, side, widths[level - 1])
        assert tuple(features[f"P{level}"].shape) == (BATCH, side, side, widths[level - 1])


def test_keras_file_round_trip_gives_the_same_outputs(zoo_model, tmp_path):
    name, model = zoo_model
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _images(2)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)))
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]


def test_tf_keras_twin_equals_the_model(zoo_model):
    from tflite.tf_keras_twin import build_twin, copy_weights

    name, model = zoo_model
    twin = build_twin(keras_regnet.get_entry(name).spec(), SIZE, CLASSES, classifier_activation=None)
    rng = np.random.default_rng(4)
    with _weights_restored(model):
        for layer in model.layers:  # non-trivial BN statistics, so copying them is checked too
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
                layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
        assert copy_weights(model, twin) == sum(1 for layer in model.layers if layer.weights)
        x = _images(3)
        np.testing.assert_allclose(twin(x, training=False).numpy(), np.asarray(model(x, training=False)),
                                   atol=1e-4, rtol=1e-4)
        # Training mode normalizes by the batch's statistics: Keras 3's fused BN against tf_keras' BN.
        np.testing.assert_allclose(twin(x, training=True).numpy(), np.asarray(model(x, training=True)),
                                   atol=1e-3, rtol=1e-3)
