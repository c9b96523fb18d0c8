"""The trainer is handed its parts; evaluation builds no training parts; step metrics are named."""

from __future__ import annotations

import numpy as np
import pytest

SMALL = dict(model="regnetx_digits", dataset="digits", image_size=16, batch_size=64, verbose=0)


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} was built")
    return refuse


def test_evaluation_builds_no_optimizer_schedule_checkpoint_or_scratch_dir(monkeypatch):
    """Evaluating used to fake a training run: a made-up LR, an SGD optimizer and a scratch model_dir."""
    import tempfile

    import keras
    import tensorflow as tf

    from training.core import config as C
    from training.core import recipe
    from training.evaluate import evaluate

    monkeypatch.setattr(keras.optimizers, "SGD", _refuse("an optimizer"))
    monkeypatch.setattr(recipe.WarmupCosine, "__init__", _refuse("an LR schedule"))
    monkeypatch.setattr(tf.train, "CheckpointManager", _refuse("a checkpoint manager"))
    monkeypatch.setattr(tempfile, "mkdtemp", _refuse("a scratch directory"))
    cfg = C.TrainConfig(**SMALL, strategy="one_device", xla="off", mixed_precision="off")
    result = evaluate("regnetx_digits", None, cfg)
    assert result["examples"] == 364 and 0.0 <= result["top5_err"] <= result["top1_err"] <= 100.0
    assert result["skipped_images"] == 0.0


def test_steps_return_named_sums_padding_and_undecodable_images_apart():
    """An eval step returns StepMetrics: field by name, padding in neither count, -1 counted invalid."""
    import keras
    import tensorflow as tf

    from training.engines.tensorflow import step as steps
    from training.data.pipeline import INVALID_LABEL, PADDING_LABEL
    from training.core.metrics import StepMetrics, Totals

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    labels = np.array([0, 1, 2, INVALID_LABEL, PADDING_LABEL, PADDING_LABEL], np.int64)
    data = tf.data.Dataset.from_tensors((tf.ones([6, 4]), labels))
    step = steps.distributed(strategy, steps.make_eval_step(model, 3, xla=False))
    metrics = step(iter(strategy.experimental_distribute_dataset(data)))
    assert isinstance(metrics, StepMetrics)
    assert (float(metrics.valid), float(metrics.invalid)) == (3.0, 1.0)
    assert float(metrics.top5) == 3.0  # 3 classes: every valid label is in the top 5
    totals = Totals().add(metrics).add(metrics)
    assert totals.valid == 6.0 and totals.loss == pytest.approx(float(metrics.loss_sum) / 3.0)
    assert totals.errors()["top5_err"] == 0.0


def test_trainer_trains_the_parts_it_is_handed_and_builds_none(tmp_path, monkeypatch):
    """Once build_parts has run, the Trainer trains, checkpoints and evaluates without building a part."""
    import keras
    import tensorflow as tf

    from training.core import models
    from training.core import recipe

    from training.engines.tensorflow import assembly as tf_assembly
    from training.core.config import TrainConfig
    from training.data import make_source
    from training.engines.tensorflow.trainer import TensorFlowTrainer
    from training.run import prepare
    from training.engines.tensorflow.devices import make_runtime

    cfg, spec, _ = prepare(TrainConfig(**SMALL, epochs=1, max_steps=2, model_dir=str(tmp_path / "run"),
                                       ema_decay=0.5))
    runtime = make_runtime("one_device", "off", "off")
    from training.engines.tensorflow.feed import make_feed

    handed = tf_assembly.build_parts(cfg, runtime, make_feed(cfg, runtime, make_source(cfg)), spec)
    before = [np.array(w) for w in handed.model.trainable_weights]
    for module in (models, tf_assembly):
        monkeypatch.setattr(module, "build_model", _refuse("a model"))
    monkeypatch.setattr(keras.optimizers, "SGD", _refuse("an optimizer"))
    monkeypatch.setattr(recipe.WarmupCosine, "__init__", _refuse("an LR schedule"))
    trainer = TensorFlowTrainer(cfg, runtime, handed)
    result = trainer.fit()
    assert trainer.model is handed.model and trainer.optimizer is handed.optimizer
    assert result["steps"] == 2 and int(handed.step.numpy()) == 2
    assert any(not np.array_equal(a, np.array(w)) for a, w in zip(before, handed.model.trainable_weights))
    # The checkpoint keeps its format: the same top-level names as before the parts were split out.
    saved = {name.split("/")[0] for name, _ in tf.train.list_variables(handed.checkpoint.latest)}
    assert {"model", "optimizer", "step", "epoch", "ema"} <= saved


def test_a_batch_that_does_not_split_over_replicas_is_a_config_error_naming_the_flag():
    import tensorflow as tf

    from keras_regnet.errors import ConfigError
    from training.data import make_source
    from training.core.config import TrainConfig
    from training.engines.tensorflow.feed import Feed

    class TwoReplicas:
        num_replicas_in_sync = 2

    source = make_source(TrainConfig(**SMALL))
    with pytest.raises(ConfigError, match=r"^--batch_size=33 is not divisible by the 2 replicas"):
        Feed(source, 33, 16, strategy=TwoReplicas())
    assert Feed(source, 64, 16, strategy=tf.distribute.get_strategy()).steps_per_epoch == source.num_train // 64
