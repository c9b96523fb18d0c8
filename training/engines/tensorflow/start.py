"""Start a run on the TensorFlow engine: tf.distribute runtime, data source, parts, trainer."""

from __future__ import annotations

from typing import Any

from training.core.config import TrainConfig
from training.core.prelude import begin_run
from training.data import make_source
from training.data.pipeline import Source
from training.engines.tensorflow.assembly import build_parts
from training.engines.tensorflow.devices import TensorFlowRuntime, make_runtime
from training.engines.tensorflow.feed import make_feed
from training.engines.tensorflow.trainer import TensorFlowTrainer


def start(cfg: TrainConfig, spec: Any, weights: Any = None, lr_follows_batch: bool = False,
          runtime: TensorFlowRuntime | None = None) -> tuple[TensorFlowTrainer, Source]:
    """The trainer of a resolved config (its cfg holding the batch fitted to the data) and its data source.

    `runtime` may be made by the caller (a custom launcher that set its devices up first).
    """
    xla = "off" if cfg.sync_bn else cfg.xla  # validated: sync_bn excludes --xla=on
    runtime = runtime or make_runtime(cfg.strategy, xla, cfg.mixed_precision, cfg.tpu)
    source = make_source(cfg)
    begun = begin_run(cfg, source.num_train, runtime.strategy.num_replicas_in_sync, runtime.is_chief,
                      weights, lr_follows_batch)
    if begun.cfg.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # a resumed run ends bit-identical
    feed = make_feed(begun.cfg, runtime, source)
    parts = build_parts(begun.cfg, runtime, feed, spec, weights=begun.weights, new_head=begun.new_head,
                        log=begun.log)
    return TensorFlowTrainer(begun.cfg, runtime, parts), source
