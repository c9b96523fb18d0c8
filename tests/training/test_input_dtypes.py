"""Light input bytes (issue 34, item 2): images leave tf.data in the model's compute dtype (bfloat16 under
mixed_bfloat16), labels as int32, and the model computes exactly what it computed from float32 pixels."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from training.core.config import TrainConfig
from training.data import make_source
from training.data.pipeline import eval_dataset, image_dtype_of, train_dataset

CFG = dict(model="regnetx_digits", dataset="digits", image_size=16, batch_size=32, verbose=0)


def _pairs(ds):
    return [(images.numpy(), labels.numpy()) for images, labels in ds]


def test_the_input_dtype_is_the_policys_compute_dtype():
    assert [image_dtype_of(p) for p in ("float32", "mixed_bfloat16", "mixed_float16")] == [
        "float32", "bfloat16", "float16"]
    with pytest.raises(ValueError, match="'mixed_int8'"):
        image_dtype_of("mixed_int8")


def test_bfloat16_batches_are_the_float32_pixels_rounded_once_with_int32_labels():
    source = make_source(TrainConfig(**CFG))
    kw = dict(batch_size=32, epoch=1, start_batch=0, num_batches=3, image_size=16, seed=5)
    wide, light = _pairs(train_dataset(source, None, **kw)), _pairs(train_dataset(source, None, **kw,
                                                                                    image_dtype="bfloat16"))
    wide_eval = _pairs(eval_dataset(source, None, 32, 2, 16))
    light_eval = _pairs(eval_dataset(source, None, 32, 2, 16, image_dtype="bfloat16"))
    for (x32, y32), (x16, y16) in zip(wide + wide_eval, light + light_eval):
        assert x32.dtype == np.float32 and x16.dtype == tf.bfloat16.as_numpy_dtype
        assert y32.dtype == y16.dtype == np.int32
        np.testing.assert_array_equal(y16, y32)
        # Bit-equal to rounding the float32 pixels to bfloat16 once, which is what the model's first op does.
        assert x16.tobytes() == tf.cast(x32, tf.bfloat16).numpy().tobytes()
        assert np.abs(x16.astype(np.float32) - x32).max() > 0  # the digits' resized pixels are not all exact


def test_the_model_sees_the_same_pixels_from_bfloat16_input():
    """Under mixed_bfloat16 the model's output from the bf16 batch equals its output from the float32 one, bit
    for bit: its ImageNetNormalization casts float32 input to bfloat16 first (keras_regnet/layers.py)."""
    import keras

    from keras_regnet import resolve_spec
    from training.core.models import build_model

    source = make_source(TrainConfig(**CFG))
    (x32, _), = _pairs(train_dataset(source, None, 32, 0, 0, 1, 16, 0))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(resolve_spec("regnetx_digits"), 16, 10)
    finally:
        keras.config.set_dtype_policy(previous)
    x16 = tf.cast(x32, tf.bfloat16)
    for training in (False, True):
        wide, light = model(x32, training=training), model(x16, training=training)
        assert np.asarray(wide).tobytes() == np.asarray(light).tobytes()


def test_the_tensorflow_feed_follows_the_runtime_policy_and_states_its_bytes():
    from training.engines.tensorflow.feed import make_feed

    cfg = TrainConfig(**CFG)
    runtime = SimpleNamespace(strategy=tf.distribute.get_strategy(), policy="mixed_bfloat16")
    feed = make_feed(cfg, runtime, make_source(cfg))
    images, labels = next(feed.train(0, 0, 1))
    assert images.dtype == tf.bfloat16 and labels.dtype == tf.int32
    images, labels = next(feed.eval())
    assert images.dtype == tf.bfloat16 and labels.dtype == tf.int32
    assert feed.bytes_per_image == 16 * 16 * 3 * 2 + 4  # half of float32's 3076


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (.[jax])")
def test_the_jax_feed_puts_bfloat16_images_and_int32_labels_on_the_devices():
    import jax.numpy as jnp

    from training.engines.jax.devices import JaxRuntime, make_layout
    from training.engines.jax.feed import make_feed

    cfg = TrainConfig(**CFG)
    for policy, dtype, size in (("mixed_bfloat16", jnp.bfloat16, 2), ("float32", jnp.float32, 4)):
        feed = make_feed(cfg, JaxRuntime(make_layout("one_device"), policy), make_source(cfg))
        images, labels = next(feed.train(0, 0, 1))
        assert images.dtype == dtype and labels.dtype == jnp.int32
        assert images.nbytes == 32 * 16 * 16 * 3 * size and feed.bytes_per_image == 16 * 16 * 3 * size + 4
