"""The custom training loop: build under the strategy, resume, train, evaluate, checkpoint, export.

Checkpoints (tf.train.CheckpointManager: data files first, then an atomically renamed index) hold
the model, the optimizer (momentum, iteration count = LR schedule position) and the global step;
epoch and position in the epoch follow from the step, and the input pipeline is a pure function of
(seed, epoch, position), so a restarted run continues exactly where the last checkpoint was.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Any

import keras
import tensorflow as tf

from training import fileio, precise_bn, reporting, steps
from training.config import TrainConfig
from training.data.mix import MixConfig
from training.data.pipeline import Source, data_errors, eval_batches, eval_dataset, train_dataset
from training.ema import WeightEMA, averaged_weights
from training.errors import Diverged
from training.models import build_model
from training.recipe import WarmupCosine, make_optimizer
from training.strategy import Runtime

# Fields that must not change between a run and its resumption (the schedule, the objective or the
# data stream depend on them).
RESUME_KEYS = ("model", "dataset", "epochs", "batch_size", "image_size", "lr", "seed", "warmup_epochs",
               "warmup_factor", "weight_decay", "momentum", "label_smoothing",
               "ema_decay", "mixup_alpha", "cutmix_alpha", "mixup_switch_prob", "crop", "bn_batch",
               "weights", "freeze", "val_fraction")
# Per-epoch history, cumulative training time and skipped count, rewritten at every epoch end so
# that a resumed run's metrics.json covers the whole run (model_dir/progress.json).
PROGRESS_FILE = "progress.json"


class NonFiniteLoss(Diverged):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """One run: a resolved TrainConfig, a Runtime (strategy/XLA/precision), a data Source."""

    def __init__(self, cfg: TrainConfig, runtime: Runtime, source: Source, spec: Any,
                 weights: Any = None, new_head: bool = False) -> None:
        self.cfg, self.runtime, self.source, self.spec = cfg, runtime, source, spec
        self.strategy = runtime.strategy
        self.global_batch = cfg.batch_size
        replicas = self.strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise ValueError(f"--batch_size={self.global_batch} is not divisible by the {replicas} "
                             f"replicas; use a multiple of {replicas}")
        self.bn_images = bn_images(cfg, replicas)
        self.steps_per_epoch = source.num_train // self.global_batch
        if self.steps_per_epoch < 1:
            raise ValueError(f"--batch_size={self.global_batch} exceeds the {source.num_train} "
                             f"training examples of --dataset={cfg.dataset}")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.eval_steps = eval_batches(source.num_eval, self.global_batch)
        self.skipped = {"train": 0.0, "eval": 0.0}
        self.step_losses: list[float] = []  # mean train loss of every step run by this process
        self._build(weights, new_head)

    # Construction --------------------------------------------------------------------------
    def _build(self, weights: Any, new_head: bool = False) -> None:
        cfg = self.cfg
        previous_policy = keras.config.dtype_policy().name
        keras.config.set_dtype_policy(self.runtime.policy)
        try:
            with self.strategy.scope():
                self.model = build_model(self.spec, cfg.image_size, self.source.num_classes,
                                         weights=weights, zero_init_final_gamma=cfg.zero_init_final_gamma,
                                         sync_bn=cfg.sync_bn, bn_batch=cfg.bn_batch, new_head=new_head,
                                         freeze=cfg.freeze, log=self._log)
                warmup = int(round(cfg.warmup_epochs * self.steps_per_epoch))
                full = self.steps_per_epoch * cfg.epochs
                self.schedule = WarmupCosine(cfg.lr, full, warmup, cfg.warmup_factor)
                self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
                self.optimizer = make_optimizer(self.schedule, cfg.momentum, True,
                                                loss_scale=self.runtime.policy == "mixed_float16",
                                                step=self.step)
                self.optimizer.build(self.model.trainable_variables)
                self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
                self.ema = (WeightEMA(averaged_weights(self.model), cfg.ema_decay)
                            if cfg.ema_decay else None)
        finally:
            keras.config.set_dtype_policy(previous_policy)
        tracked = {"ema": self.ema.state} if self.ema is not None else {}
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                              step=self.step, epoch=self.epoch, **tracked)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._checkpoint_dir(),
                                                  max_to_keep=cfg.keep_checkpoints)
        train_fn = steps.make_train_step(self.model, self.optimizer, self.global_batch,
                                         self.source.num_classes, cfg.weight_decay,
                                         cfg.label_smoothing, self.runtime.xla)
        eval_fn = steps.make_eval_step(self.model, self.source.num_classes, self.runtime.xla)
        ema_update = (lambda: self.ema.update(self.strategy)) if self.ema is not None else None
        self.train_step = steps.distributed(self.strategy, train_fn,
                                            average=self.model.non_trainable_variables, after=ema_update)
        self.eval_step = steps.distributed(self.strategy, eval_fn)
        self._swap_ema = tf.function(lambda: self.ema.swap(self.strategy)) if self.ema is not None else None
        self._bn_statistics = (precise_bn.make_statistics_step(self.strategy, self.model)
                               if cfg.precise_bn_images else None)

    def _log(self, message: str) -> None:
        if self.cfg.verbose and self.runtime.is_chief:
            print(message, flush=True)

    def _checkpoint_dir(self) -> str:
        """Chief writes to model_dir/checkpoints; other workers to a scratch dir (deleted)."""
        base = fileio.join(self.cfg.model_dir, "checkpoints")
        if self.runtime.is_chief:
            return base
        return fileio.join(self.cfg.model_dir, "tmp", f"worker_{self.runtime.worker_index}")

    # Resume -------------------------------------------------------------------------------
    def restore_or_start(self) -> int:
        """Restore the latest checkpoint (if any, and --resume), check the run matches; return step."""
        cfg = self.cfg
        latest = tf.train.latest_checkpoint(fileio.join(cfg.model_dir, "checkpoints"))
        config_path = fileio.join(cfg.model_dir, "config.json")
        if latest and not cfg.resume:
            raise ValueError(f"--model_dir={cfg.model_dir!r} already holds checkpoints and --noresume "
                             f"was given; pass --resume to continue it or choose a fresh --model_dir")
        if latest:
            self._check_same_run(config_path)
            self.checkpoint.restore(latest).expect_partial()
        elif self.runtime.is_chief:
            fileio.write_json_atomic(config_path, self._run_config())
        return int(self.step.numpy())

    def _run_config(self) -> dict[str, Any]:
        data = {k: getattr(self.cfg, k) for k in RESUME_KEYS}
        data["spec"] = self.spec.to_dict()
        data["num_classes"] = self.source.num_classes
        return data

    def _check_same_run(self, config_path: str) -> None:
        if not fileio.exists(config_path):
            return
        saved = fileio.read_json(config_path)
        check_same_run(saved, self._run_config(), self.cfg)

    # Train / eval -------------------------------------------------------------------------
    def _train_iterator(self, epoch: int, start: int, count: int) -> Any:
        cfg = self.cfg
        mix = MixConfig(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_switch_prob)

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            per_replica = ctx.get_per_replica_batch_size(self.global_batch)
            local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            return train_dataset(self.source, ctx, per_replica, epoch, start * local, count * local,
                                 cfg.image_size, cfg.seed, cfg.deterministic, mix)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def recompute_bn_statistics(self) -> None:
        """Precise BN: the BN moving statistics from --precise_bn_images training images, now.

        The batches are the first of the current epoch's stream (a pure function of the seed and
        epoch), so a resumed run recomputes the same statistics.
        """
        if self._bn_statistics is None:
            return
        batches = min(max(1, self.cfg.precise_bn_images // self.global_batch), self.steps_per_epoch)
        epoch = max(int(self.step.numpy()) - 1, 0) // self.steps_per_epoch
        with data_errors():
            precise_bn.recompute(self._bn_statistics, self.model, self._train_iterator(epoch, 0, batches), batches)

    def evaluate(self) -> dict[str, float]:
        """Loss, top-1/top-5 error (%) on the whole eval split (padding masked out)."""
        self.recompute_bn_statistics()

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            per_replica = ctx.get_per_replica_batch_size(self.global_batch)
            local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            return eval_dataset(self.source, ctx, per_replica, self.eval_steps * local, self.cfg.image_size)

        iterator = iter(self.strategy.distribute_datasets_from_function(dataset_fn))
        totals = [0.0] * 5
        with data_errors():
            for _ in range(self.eval_steps):
                totals = [t + float(v) for t, v in zip(totals, self.eval_step(iterator))]
        loss, top1, top5, valid, invalid = totals
        self.skipped["eval"] = invalid  # padding has its own label and is not counted
        valid = max(valid, 1.0)
        return {"loss": loss / valid, "top1_err": 100.0 * (1 - top1 / valid),
                "top5_err": 100.0 * (1 - top5 / valid), "examples": valid}

    def evaluate_final_weights(self) -> dict[str, Any]:
        """Eval of the weights that get exported: the EMA (plus the raw weights' as raw_*) if on."""
        if self.ema is None:
            return self.evaluate()
        raw = self.evaluate()
        with self.ema_weights():
            averaged = self.evaluate()
        return {**averaged, **{f"raw_{k}": raw[k] for k in ("loss", "top1_err", "top5_err")}}

    def ema_weights(self) -> Any:
        """Context manager: the model holds the EMA weights inside, its own weights again after."""

        @contextlib.contextmanager
        def swapped() -> Any:
            self._swap_ema()
            try:
                yield
            finally:
                self._swap_ema()

        return swapped() if self.ema is not None else contextlib.nullcontext()

    def save_checkpoint(self) -> None:
        self.epoch.assign(int(self.step.numpy()) // self.steps_per_epoch)
        self.manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.runtime.is_chief:
            fileio.rmtree(self._checkpoint_dir())

    def fit(self) -> dict[str, Any]:
        """Train from the restored step to the end, evaluating each epoch; return final metrics."""
        cfg = self.cfg
        start_step = self.restore_or_start()
        scalars = reporting.Scalars(fileio.join(cfg.model_dir, "logs") if self.runtime.is_chief else None)
        history, train_time, images_per_s = self._load_progress(start_step)
        step = start_step
        while step < self.total_steps:
            epoch, start = divmod(step, self.steps_per_epoch)
            count = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch) - start
            t0 = time.perf_counter()
            step, images_per_s = self._train_epoch(epoch, start, count, scalars)
            train_time += time.perf_counter() - t0
            self.save_checkpoint()
            metrics = self.evaluate_final_weights()
            metrics.update(epoch=epoch + 1, step=step, images_per_s=images_per_s)
            history.append(metrics)
            self._save_progress(history, train_time)
            scalars.write("eval", step, {k: metrics[k] for k in ("loss", "top1_err", "top5_err")})
            if self.ema is not None:
                scalars.write("eval_raw", step, {k: metrics[f"raw_{k}"] for k in ("loss", "top1_err", "top5_err")})
            if cfg.verbose and self.runtime.is_chief:
                label = "eval (EMA)" if self.ema is not None else "eval"
                raw = f"  [raw weights: top-1 err {metrics['raw_top1_err']:.2f}%]" if self.ema is not None else ""
                print(f"  {label}: loss {metrics['loss']:.4f}  top-1 err {metrics['top1_err']:.2f}%  "
                      f"top-5 err {metrics['top5_err']:.2f}%{raw}", flush=True)
        # A run that had nothing left to train is re-evaluated (its skipped-eval count too).
        final = history[-1] if step > start_step else self.evaluate_final_weights()
        return {**final, "train_time_s": train_time, "steps": int(self.step.numpy()),
                "epochs": self.total_steps / self.steps_per_epoch, "resumed_from_step": start_step,
                "images_per_s": images_per_s, "history": history,
                "skipped_images": dict(self.skipped), "ema_decay": cfg.ema_decay,
                "bn_images": self.bn_images, "precise_bn_images": cfg.precise_bn_images,
                "eval_weights": "ema" if self.ema is not None else "raw"}

    def _progress_path(self) -> str:
        return fileio.join(self.cfg.model_dir, PROGRESS_FILE)

    def _save_progress(self, history: list[dict[str, Any]], train_time: float) -> None:
        """Chief: record the per-epoch history, training time and skipped count so far."""
        if self.runtime.is_chief:
            fileio.write_json_atomic(self._progress_path(), {
                "history": history, "train_time_s": train_time, "skipped_train": self.skipped["train"]})

    def _load_progress(self, start_step: int) -> tuple[list[dict[str, Any]], float, float]:
        """(history, training time, last images/s) of the epochs finished before `start_step`.

        Restores the skipped-train count too. Only epochs ending at or before the restored
        checkpoint are kept (a later entry would belong to steps about to be re-run); the time and
        skipped count are those recorded at the last kept epoch end.
        """
        path = self._progress_path()
        if start_step == 0 or not fileio.exists(path):
            return [], 0.0, 0.0
        saved = fileio.read_json(path)
        history = [h for h in saved.get("history", []) if h.get("step", start_step + 1) <= start_step]
        if len(history) != len(saved.get("history", [])):
            return history, 0.0, 0.0  # cannot split the recorded totals; count from here on
        self.skipped["train"] = float(saved.get("skipped_train", 0.0))
        last_rate = float(history[-1].get("images_per_s", 0.0)) if history else 0.0
        return history, float(saved.get("train_time_s", 0.0)), last_rate

    def _train_epoch(self, epoch: int, start: int, count: int, scalars: reporting.Scalars) -> tuple[int, float]:
        cfg = self.cfg
        iterator = self._train_iterator(epoch, start, count)
        progress = reporting.Progress(epoch, cfg.epochs, self.steps_per_epoch, start,
                                      cfg.verbose if self.runtime.is_chief else 0)
        sums = [0.0] * 5
        for i in range(start, start + count):
            with data_errors():
                loss_sum, top1, top5, valid, invalid = (float(v) for v in self.train_step(iterator))
            self.step.assign_add(1)
            step = int(self.step.numpy())
            if not math.isfinite(loss_sum):
                raise NonFiniteLoss(
                    f"training loss became {loss_sum} at step {step} (epoch {epoch + 1}); stopped, "
                    f"try a lower --lr (was {cfg.lr:g}). "
                    f"Last good checkpoint: {self.manager.latest_checkpoint or 'none'}"
                )
            sums = [s + v for s, v in zip(sums, (loss_sum, top1, top5, valid, invalid))]
            self.step_losses.append(loss_sum / max(valid, 1.0))
            self.skipped["train"] += invalid
            lr = float(self.schedule(step - 1))  # the LR this step applied (read before the increment)
            seen = max(valid, 1.0)
            epoch_seen = max(sums[3], 1.0)  # the bar shows this epoch's running means, not the last batch
            progress.update(i + 1, self.global_batch,
                            {"loss": sums[0] / epoch_seen, "top1": sums[1] / epoch_seen, "lr": lr})
            if step % 10 == 0 or i + 1 == start + count:
                scalars.write("train", step, {"loss": loss_sum / seen, "top1_err": 100 * (1 - top1 / seen),
                                              "top5_err": 100 * (1 - top5 / seen), "lr": lr,
                                              "images_per_s": progress.images_per_second()})
            if step % cfg.checkpoint_every == 0 and i + 1 < start + count:
                self.save_checkpoint()
        return int(self.step.numpy()), progress.images_per_second()

    # Export -------------------------------------------------------------------------------
    def export(self) -> str | None:
        """Save the trained model (its EMA weights when --ema_decay > 0) as model_dir/model.keras."""
        if not self.runtime.is_chief:
            return None
        path = fileio.join(self.cfg.model_dir, "model.keras")
        tmp = fileio.join(self.cfg.model_dir, ".tmp-model.keras")
        with self.ema_weights():
            self.model.save(tmp)
        fileio.replace(tmp, path)
        return path


def bn_images(cfg: TrainConfig, replicas: int) -> int:
    """Images per BatchNorm normalization in training; ValueError if --bn_batch does not divide.

    The global batch with --sync_bn, --bn_batch when given (ghost BN), else each replica's batch:
    the paper's 8 GPUs x 128 normalize over 128, one GPU with the same batch over 1024.
    """
    per_replica = cfg.batch_size // replicas
    if cfg.sync_bn:
        return cfg.batch_size
    if cfg.bn_batch is None:
        return per_replica
    if per_replica % cfg.bn_batch:
        raise ValueError(f"--bn_batch={cfg.bn_batch} does not divide the per-replica batch of {per_replica} "
                         f"(--batch_size={cfg.batch_size} over {replicas} replicas); use a divisor of "
                         f"{per_replica}, e.g. {math.gcd(per_replica, cfg.bn_batch)}")
    return cfg.bn_batch


def check_same_run(saved: dict[str, Any], current: dict[str, Any], cfg: TrainConfig) -> None:
    """ValueError naming the flag when `current` (a run config) cannot resume the `saved` one.

    The network is compared by its NetSpec when config.json holds one, so an alias of the same
    zoo model resumes while an edited JSON spec file (same --model path) is refused; the class
    count is compared so a --data_dir with added or removed class folders is refused too.
    """
    where = f"the run being resumed in --model_dir={cfg.model_dir!r}"
    fresh = "use the same value or a fresh --model_dir"
    current = json.loads(json.dumps(current))  # tuples -> lists, as read back from config.json
    if "spec" in saved:
        if saved["spec"] != current["spec"]:
            raise ValueError(f"--model={cfg.model!r} builds a different network than {where} "
                             f"(saved NetSpec {saved['spec'].get('name')!r} in config.json); {fresh}")
    elif "model" in saved and saved["model"] != current["model"]:
        raise ValueError(f"--model={cfg.model!r} differs from {where} ({saved['model']!r}); {fresh}")
    if "num_classes" in saved and saved["num_classes"] != current["num_classes"]:
        raise ValueError(f"--data_dir={cfg.data_dir!r} has {current['num_classes']} classes but {where} "
                         f"has {saved['num_classes']}; {fresh}")
    for key in RESUME_KEYS:
        if key != "model" and key in saved and saved[key] != current[key]:
            raise ValueError(f"--{key}={current[key]!r} differs from {where} ({saved[key]!r}); {fresh}")
