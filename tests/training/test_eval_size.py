"""--eval_image_size and --eval_crop_fraction: the eval batches, the exported model and training.evaluate.

The crop convention is pycls's/timm's: the shorter side is resized to size / crop_fraction, then the
centre size x size window is kept (offset ceil((side - size) / 2), keras_regnet.pretrained.eval_crop).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf


def _png(pixels: np.ndarray) -> bytes:
    return tf.io.encode_png(tf.constant(pixels)).numpy()


def test_crop_fraction_resizes_the_shorter_side_to_size_over_fraction_then_centre_crops():
    from training.data import augment

    pixels = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    # size 20 at fraction 0.5: shorter side 20 / 0.5 = 40 (no resize), window at (ceil(20/2), ceil(40/2)).
    out = augment.eval_image(_png(pixels), 20, 0.5).numpy()
    np.testing.assert_array_equal(out, pixels[10:30, 20:40])
    # The default is the paper's 0.875 (what eval did before the flag), not 0.5.
    default = augment.eval_image(_png(pixels), 35).numpy()
    np.testing.assert_array_equal(default, augment.eval_image(_png(pixels), 35, 0.875).numpy())
    assert not np.array_equal(augment.eval_image(_png(pixels), 35, 1.0).numpy(), default)


def test_folder_source_evaluates_with_the_crop_fraction(tmp_path):
    from training.core.config import TrainConfig
    from training.data import make_source

    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        os.makedirs(tmp_path / name)
        for i in range(3):
            (tmp_path / name / f"{i}.png").write_bytes(_png(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)))
    source = make_source(TrainConfig(dataset="folder", data_dir=str(tmp_path), eval_crop_fraction=0.5,
                                     val_fraction=0.5))
    path = tf.constant(str(tmp_path / "a" / "0.png"))
    pixels = tf.io.decode_png(tf.io.read_file(path)).numpy()
    np.testing.assert_array_equal(source.eval_map(path, 20).numpy(), pixels[10:30, 20:40])


def test_feed_builds_eval_batches_at_the_eval_size():
    from training.data import digits_stream
    from training.data.pipeline import FeedSettings
    from training.engines.tensorflow.feed import Feed

    source = digits_stream.make_source()
    assert FeedSettings(source, 32, 16).eval_size == 16  # default: the training size, as before
    feed = Feed(source, 32, 16, eval_image_size=24, strategy=tf.distribute.get_strategy())
    images, _ = next(feed.eval())
    assert images.shape == (32, 24, 24, 3)
    train_images, _ = next(feed.train(0, 0, 1))
    assert train_images.shape == (32, 16, 16, 3)


@pytest.fixture(scope="module")
def run_at_24(tmp_path_factory):
    from training.api import train

    model_dir = str(tmp_path_factory.mktemp("eval24") / "run")
    result = train("regnetx_digits", epochs=1, batch_size=32, image_size=16, eval_image_size=24, max_steps=2,
                   model_dir=model_dir)
    return model_dir, result


def test_a_run_with_another_eval_size_exports_it_and_evaluate_defaults_to_it(run_at_24):
    import keras

    import keras_regnet  # noqa: F401 (registers the custom layers)
    from training.core.config import TrainConfig
    from training.evaluate import EvalConfig, evaluate

    model_dir, result = run_at_24
    assert result["steps"] == 2 and np.isfinite(result["top1_err"])
    model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    assert model.input_shape == (None, 24, 24, 3)
    with open(os.path.join(model_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["eval_image_size"] == 24 and saved["image_size"] == 16
    cfg = EvalConfig(model="regnetx_digits", weights=model_dir, dataset="digits", batch_size=91).train_config()
    assert cfg.image_size == 24
    scored = evaluate("regnetx_digits", model_dir, cfg)
    assert scored["examples"] == 364 and scored["top1_err"] == pytest.approx(result["top1_err"], abs=1e-4)
    # --image_size still wins over the run's eval size.
    assert EvalConfig(model="regnetx_digits", weights=model_dir, dataset="digits",
                      image_size=32).train_config().image_size == 32
    assert TrainConfig().eval_image_size is None


@pytest.mark.parametrize("changes, message", [
    (dict(eval_image_size=0), "--eval_image_size must be a positive integer"),
    (dict(eval_crop_fraction=0.0), r"--eval_crop_fraction must be in \(0, 1\]"),
    (dict(eval_crop_fraction=1.5, dataset="folder", data_dir="x"), r"--eval_crop_fraction must be in \(0, 1\]"),
    (dict(eval_crop_fraction=0.9), "--eval_crop_fraction is used by --dataset=imagenet2012|tfrecord|folder"),
])
def test_bad_eval_size_flags_are_one_line_errors(changes, message):
    from training.core.config import TrainConfig, validate

    with pytest.raises(ValueError, match=message) as error:
        validate(TrainConfig(**changes))
    assert "\n" not in str(error.value)


def test_an_eval_size_below_the_networks_stride_names_the_flag():
    from training.core.config import TrainConfig
    from training.run import prepare

    with pytest.raises(ValueError, match=r"--eval_image_size=4 is too small for --model='regnetx_digits'"):
        prepare(TrainConfig(model="regnetx_digits", eval_image_size=4))


def test_the_jax_engine_evaluates_and_exports_at_the_eval_size(tmp_path):
    """The same flag on the JAX engine (its feed shares FeedSettings.eval_size; its export model is resized)."""
    import subprocess
    import sys

    from tests.helpers.paths import REPO_ROOT

    model_dir = str(tmp_path / "jax")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "training.main", "--engine=jax", "--model=regnetx_digits",
                           "--image_size=16", "--eval_image_size=24", "--max_steps=2", "--verbose=0",
                           f"--model_dir={model_dir}"], cwd=str(REPO_ROOT), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    import keras

    import keras_regnet  # noqa: F401 (registers the custom layers)

    assert keras.saving.load_model(os.path.join(model_dir, "model.keras")).input_shape == (None, 24, 24, 3)
    with open(os.path.join(model_dir, "metrics.json")) as f:
        assert np.isfinite(json.load(f)["top1_err"])
