"""run(config): resolve a TrainConfig, train it, write metrics.json and model.keras; shared by CLI and API."""

from __future__ import annotations

import importlib
import json
import os
import time
from typing import Any

from keras_regnet import fileio
from keras_regnet.errors import ConfigError
from training.core.config import TrainConfig, resolve
from training.core.preemption import Notices
from training.core.run_lock import RunLock
from training.core.write_guard import guarded_write


def prepare(cfg: TrainConfig, spec: Any = None) -> tuple[TrainConfig, Any, Any]:
    """(resolved config, NetSpec, zoo entry) without touching TensorFlow."""
    from keras_regnet import resolve_model
    from training.core.models import check_image_size

    spec_, entry = resolve_model(cfg.model if spec is None else spec, label="--model")
    zoo_batch = entry.batch_size if entry is not None and cfg.dataset in ("imagenet2012", "tfrecord") else None
    resolved = resolve(cfg, zoo_batch)
    check_image_size(spec_, resolved.image_size)
    if resolved.eval_image_size is not None:
        check_image_size(spec_, resolved.eval_image_size, flag="--eval_image_size")
    return resolved, spec_, entry


def make_model_dir(model_dir: str) -> None:
    """Create --model_dir (and parents) or raise a ConfigError naming the flag."""
    if fileio.is_remote(model_dir):
        _make_remote_dir(model_dir)
        return
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--model_dir={model_dir!r} cannot be used as a directory ({e.strerror}); "
                          f"pass a writable directory path") from e
    if not os.access(model_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"--model_dir={model_dir!r} is not writable; pass a writable directory path")


def _make_remote_dir(model_dir: str) -> None:
    """Create a gs://... (etc.) --model_dir through tf.io.gfile; a one-line error if that fails."""
    import tensorflow as tf

    try:
        fileio.makedirs(model_dir)
    except (tf.errors.OpError, OSError) as e:
        reason = getattr(e, "message", None) or str(e)
        raise ConfigError(f"--model_dir={model_dir!r} cannot be created ({reason.splitlines()[0]}); "
                          f"check the URL scheme, bucket and credentials") from e


CLASS_NAMES_FILE = "class_names.json"  # = keras_regnet.pretrained.load.CLASS_NAMES_FILE, read beside model.keras
SPLIT_FILE = "split.json"


def write_data_records(model_dir: str, source: Any) -> None:
    """class_names.json beside model.keras (read by evaluation, export and serving) and, for folder
    data, split.json: which file went to train and which to val."""
    if getattr(source, "class_names", None):
        fileio.write_json_atomic(fileio.join(model_dir, CLASS_NAMES_FILE), list(source.class_names))
    if getattr(source, "split", None):
        fileio.write_json_atomic(fileio.join(model_dir, SPLIT_FILE), source.split)


def run(cfg: TrainConfig, spec: Any = None, runtime: Any = None, weights: Any = None,
        persist: bool = True) -> dict[str, Any]:
    """Train per cfg (resuming from cfg.model_dir when it holds checkpoints); return the metrics dict.

    The engine is engine_of(cfg): training.engines.tensorflow (tf.distribute) or training.engines.jax; its
    `start` builds the trainer, the core loop (training.core.loop) trains, and both write the same run
    directory. `runtime` is the engine's own (a custom launcher's devices), `weights` in-memory weights.
    persist=False: the caller throws cfg.model_dir away afterwards, so no checkpoints, TensorBoard logs or
    model.keras are written (the metrics are still returned); training.api.train without a model_dir.
    """
    lr_follows_batch = cfg.lr is None
    cfg, spec, _ = prepare(cfg, spec)
    from keras_regnet.complexity import complexity
    from training.core.engine_choice import engine_of

    make_model_dir(cfg.model_dir)
    t0 = time.perf_counter()
    engine = engine_of(cfg)
    start = importlib.import_module(f"training.engines.{engine}.start").start
    trainer, source = start(cfg, spec, weights=weights, lr_follows_batch=lr_follows_batch, runtime=runtime)
    cfg, runtime = trainer.cfg, trainer.runtime  # the batch (and LR) fitted to the data
    if cfg.verbose and runtime.is_chief:
        cost = complexity(spec, cfg.image_size, classes=source.num_classes)
        print(f"Training {spec.name} ({cost}) on {source.name}: {source.num_train} train / "
              f"{source.num_eval} eval images, {cfg.epochs} epochs x {trainer.steps_per_epoch} steps, "
              f"batch {cfg.batch_size}, lr {cfg.lr:g}, strategy {runtime.kind} "
              f"({runtime.replicas} replicas), xla {'on' if runtime.xla else 'off'}, "
              f"precision {runtime.policy}, BN over {trainer.bn_images} images"
              f"{' (sync)' if cfg.sync_bn else ' (ghost)' if cfg.bn_batch else ' (per replica)'}, "
              f"input {trainer.feed.image_dtype} images: {trainer.feed.bytes_per_image:,} bytes per image "
              f"to the devices", flush=True)
    notices = Notices(cfg.preemption_signal, cfg.preemption_grace_s).install()  # SIGTERM: stop at a step
    trainer.preemption = notices
    trainer.persist = persist
    lock = None
    try:
        lock = RunLock(cfg.model_dir).acquire() if runtime.is_chief else None  # one run per model_dir
        if lock is not None and lock.taken_over and cfg.verbose:
            print(f"{cfg.model_dir}: {lock.taken_over}", flush=True)
        return _train_and_record(cfg, spec, trainer, source, engine, t0)
    finally:
        notices.uninstall()
        if lock is not None:
            lock.release()


def _train_and_record(cfg: TrainConfig, spec: Any, trainer: Any, source: Any, engine: str,
                      t0: float) -> dict[str, Any]:
    """Train (resuming), export model.keras, write the data records and metrics.json (the chief's)."""
    from keras_regnet.complexity import complexity

    runtime = trainer.runtime
    result = trainer.fit()
    model_path = trainer.export() if trainer.persist else None
    if runtime.is_chief:
        write_data_records(cfg.model_dir, source)
    cost = complexity(spec, cfg.image_size, classes=source.num_classes)
    result.update(model=spec.name, dataset=cfg.dataset, batch_size=cfg.batch_size, lr=cfg.lr,
                  image_size=cfg.image_size, model_dir=fileio.absolute(cfg.model_dir),
                  flops=cost.flops, params=cost.params, total_time_s=time.perf_counter() - t0,
                  checkpoint=trainer.checkpoint.latest if trainer.persist else None, model_path=model_path,
                  strategy=runtime.kind, replicas=runtime.replicas, engine=engine,
                  xla=runtime.xla, precision=runtime.policy,
                  exported_weights="ema" if trainer.ema is not None else "raw")
    if trainer.compilation() is not None:  # JAX: compile seconds, persistent-cache hits and misses
        result["compilation"] = trainer.compilation()
    metrics_path = fileio.join(cfg.model_dir, "metrics.json")
    if result["resumed_from_step"] == result["steps"] and fileio.exists(metrics_path):
        # A finished run was only re-evaluated: keep its recorded history and timings.
        previous = fileio.read_json(metrics_path)
        result = {**result, **{k: v for k, v in previous.items()
                               if k in ("history", "train_time_s", "images_per_s", "skipped_images",
                                        "wall_images_per_s", "wall_s", "seconds")}}
    if runtime.is_chief:
        with guarded_write("metrics", metrics_path, lambda: len(json.dumps(result, indent=2, sort_keys=True))):
            fileio.write_json_atomic(metrics_path, result)
    return result
