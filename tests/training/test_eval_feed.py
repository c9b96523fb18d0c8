"""Both engines' feeds build the eval pipeline once and iterate it afresh at every evaluation (issue 34, item 3):
an epoch end no longer rebuilds tf.data graphs, and every evaluation still sees the whole split, identically."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from training.core.config import TrainConfig

CFG = dict(model="regnetx_digits", dataset="digits", image_size=16, batch_size=64, verbose=0)


def _counting(monkeypatch, module) -> list[int]:
    built, real = [], module.eval_dataset

    def eval_dataset(*args, **kw):
        built.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(module, "eval_dataset", eval_dataset)
    return built


def _labels(batches) -> list[np.ndarray]:
    return [np.asarray(labels) for _, labels in batches]


def test_the_tensorflow_feed_builds_its_eval_pipeline_once(monkeypatch):
    from training.data import make_source
    from training.engines.tensorflow import feed as tf_feed
    from training.engines.tensorflow.devices import make_runtime

    built = _counting(monkeypatch, tf_feed)
    cfg = TrainConfig(**CFG)
    feed = tf_feed.make_feed(cfg, make_runtime("one_device", "off", "off"), make_source(cfg))
    passes = [_labels(batch for _, batch in zip(range(feed.eval_steps), feed.eval())) for _ in range(3)]
    assert len(built) == 1
    assert len(passes[0]) == feed.eval_steps >= 2
    for later in passes[1:]:  # each evaluation starts from the split's first batch again
        assert all(np.array_equal(a, b) for a, b in zip(passes[0], later))


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (.[jax])")
def test_the_jax_feed_builds_its_eval_pipeline_once(monkeypatch):
    from training.data import make_source
    from training.engines.jax import feed as jax_feed
    from training.engines.jax.devices import JaxRuntime, make_layout

    built = _counting(monkeypatch, jax_feed)
    cfg = TrainConfig(**CFG)
    feed = jax_feed.make_feed(cfg, JaxRuntime(make_layout("one_device"), "float32"), make_source(cfg))
    passes = [_labels(feed.eval()) for _ in range(3)]
    assert len(built) == 1
    assert len(passes[0]) == feed.eval_steps >= 2
    for later in passes[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(passes[0], later))
