"""Start a run on the JAX engine: processes, device mesh, precision, data source, parts, trainer."""

from __future__ import annotations

import sys
from typing import Any

from training.core.config import TrainConfig
from training.core.prelude import begin_run
from training.engines.jax.devices import JaxRuntime
from training.engines.jax.trainer import JaxTrainer


def start(cfg: TrainConfig, spec: Any, weights: Any = None, lr_follows_batch: bool = False,
          runtime: JaxRuntime | None = None) -> tuple[JaxTrainer, Any]:
    """The trainer of a resolved config (its cfg holding the batch fitted to the data) and its data source.

    `runtime` may be made by the caller (devices and precision chosen by a custom launcher).
    """
    from training.engines.jax.feed import hide_accelerators_from_tensorflow, make_feed

    hide_accelerators_from_tensorflow()  # before TensorFlow runs an op: the accelerators stay JAX's
    from training.data import make_source
    from training.engines.jax import compilation_cache
    from training.engines.jax.assembly import build_parts
    from training.engines.jax.devices import (
        DETERMINISTIC_GPU_FLAG,
        initialize_processes,
        make_layout,
        request_deterministic_gpu_ops,
    )
    from training.engines.jax.precision import resolve_policy

    cache_dir = compilation_cache.enable(cfg.compilation_cache_dir)  # before the first compile of the run
    compiles = compilation_cache.count_compiles(cache_dir)
    if runtime is None:
        if cfg.deterministic and not request_deterministic_gpu_ops():
            print(f"warning: --deterministic: JAX started before the run could set XLA's deterministic-ops flag; "
                  f"GPU reductions may vary (set XLA_FLAGS={DETERMINISTIC_GPU_FLAG} before starting)", file=sys.stderr)
        initialize_processes(cfg.coordinator_address, cfg.num_processes, cfg.process_id)
        layout = make_layout(cfg.strategy)
        runtime = JaxRuntime(layout, resolve_policy(cfg.mixed_precision, layout))
    source = make_source(cfg)
    begun = begin_run(cfg, source.num_train, runtime.layout.devices, runtime.is_chief, weights, lr_follows_batch)
    feed = make_feed(begun.cfg, runtime, source)
    parts = build_parts(begun.cfg, runtime, feed, spec, weights=begun.weights, new_head=begun.new_head, log=begun.log)
    trainer = JaxTrainer(begun.cfg, runtime, parts)
    trainer.compiles = compiles
    return trainer, source
