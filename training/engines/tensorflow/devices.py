"""tf.distribute strategy, XLA and mixed-precision resolution for --strategy/--xla/--mixed_precision.

`auto` picks: TPUStrategy when --tpu is given, MultiWorkerMirroredStrategy when TF_CONFIG lists
several tasks, MirroredStrategy on several GPUs, else one device. XLA `auto` is on for GPU/TPU
and off on CPU (XLA's grouped-conv backward pass is very slow on CPU). Mixed precision `auto` is
bfloat16 on TPU and on GPUs with compute capability >= 8.0 (Ampere on: bfloat16 has float32's
range, so no loss scaling), float16 with dynamic loss scaling on 7.x GPUs (Volta/Turing have no
bfloat16 tensor cores), float32 otherwise. The paper trained in float32: --mixed_precision=off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import tensorflow as tf

from keras_regnet.errors import ConfigError
from training.core.cluster_launch import cluster_launch


@dataclass(frozen=True)
class TensorFlowRuntime:
    """What the run executes on: the strategy and the resolved XLA / precision settings."""

    strategy: tf.distribute.Strategy
    kind: str  # one_device | mirrored | multi_worker_mirrored | tpu
    device_type: str  # CPU | GPU | TPU
    xla: bool
    policy: str  # Keras dtype policy: float32 | mixed_float16 | mixed_bfloat16
    is_chief: bool
    worker_index: int

    @property
    def replicas(self) -> int:
        """Replicas in sync over all workers (the JaxRuntime's devices)."""
        return self.strategy.num_replicas_in_sync


def tf_config_workers() -> tuple[int, str, int]:
    """(number of tasks, this task's type, this task's index) from TF_CONFIG; (1, '', 0) without it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 1, "", 0
    try:
        config = json.loads(raw)
        cluster = config.get("cluster", {})
        task = config.get("task", {})
    except (ValueError, AttributeError) as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e}); --strategy=multi_worker_mirrored needs it") from e
    count = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    return count, task.get("type", ""), int(task.get("index", 0))


def make_strategy(kind: str, tpu: str | None = None) -> tuple[tf.distribute.Strategy, str]:
    """The strategy for --strategy (create it before any other TensorFlow op runs)."""
    workers, _, _ = tf_config_workers()
    if workers <= 1 and kind != "tpu" and not tpu:
        refuse_cluster_launch_without_tf_config(os.environ)
    if kind == "auto" and (tpu or workers > 1):
        kind = "tpu" if tpu else "multi_worker_mirrored"
    if kind == "tpu":
        return tf.distribute.TPUStrategy(_connect_tpu(tpu)), kind
    if kind == "multi_worker_mirrored":
        if workers < 1 or not os.environ.get("TF_CONFIG"):
            raise ConfigError("--strategy=multi_worker_mirrored needs TF_CONFIG describing the cluster "
                              "(set it on every worker), or use --strategy=auto|mirrored|one_device")
        return tf.distribute.MultiWorkerMirroredStrategy(), kind  # before any device query
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "auto":
        kind = "mirrored" if len(gpus) > 1 else "one_device"
    if kind == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices), kind
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0"), kind
    raise ConfigError(f"--strategy={kind!r} is not allowed; choose auto, one_device, mirrored, "
                      f"multi_worker_mirrored, tpu")


def refuse_cluster_launch_without_tf_config(environ: Mapping[str, str]) -> None:
    """One line when a launcher started several copies of this run but TF_CONFIG does not join them.

    Without it each process would train alone as chief of the same --model_dir (a silent split).
    """
    launch = cluster_launch(environ)
    if launch:
        raise ConfigError(f"this process is one of several started by {launch}, but TF_CONFIG is not set, so each "
                          f"would train alone into the same --model_dir; set TF_CONFIG on every process "
                          f"(docs/training.md, multi-worker), use --engine=jax (it joins SLURM and Open MPI "
                          f"launches through jax.distributed), or start a single process")


def _connect_tpu(tpu: str | None) -> tf.distribute.cluster_resolver.TPUClusterResolver:
    """Resolve, connect to and initialise the TPU; ValueError naming --tpu/--strategy if that fails."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, OSError, RuntimeError, tf.errors.OpError) as e:  # URLError is an OSError
        detail = " ".join(str(e).split())
        raise ConfigError(f"--strategy=tpu found no TPU for --tpu={tpu!r} ({type(e).__name__}: {detail}); "
                          f"pass --tpu=NAME_OR_GRPC_ADDRESS, run on a TPU VM, or use "
                          f"--strategy=auto|one_device|mirrored without --tpu") from e
    return resolver


def device_type(kind: str) -> str:
    if kind == "tpu":
        return "TPU"
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def resolve_xla(flag: str, device: str) -> bool:
    """--xla: on/off as given; auto = on for GPU and TPU, off for CPU."""
    return flag == "on" or (flag == "auto" and device in ("GPU", "TPU"))


def resolve_policy(flag: str, device: str) -> str:
    """--mixed_precision to a Keras dtype policy name."""
    if flag == "off":
        return "float32"
    if flag == "float16":
        if device == "TPU":
            raise ConfigError("--mixed_precision=float16 is not supported on TPU; use bfloat16")
        return "mixed_float16"
    if flag == "bfloat16":
        return "mixed_bfloat16"
    if device == "TPU":
        return "mixed_bfloat16"
    if device == "GPU":
        capability = _min_compute_capability()
        if capability >= (8, 0):
            return "mixed_bfloat16"
        if capability >= (7, 0):
            return "mixed_float16"
    return "float32"


def _min_compute_capability() -> tuple[int, int]:
    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        caps.append(tuple(details.get("compute_capability", (0, 0))))
    return min(caps) if caps else (0, 0)


def make_runtime(strategy_flag: str, xla_flag: str, precision_flag: str, tpu: str | None = None) -> TensorFlowRuntime:
    """Strategy + XLA + precision from the three flags, and whether this process is the chief."""
    strategy, kind = make_strategy(strategy_flag, tpu)
    device = device_type(kind)
    _, task_type, index = tf_config_workers()
    is_chief = kind != "multi_worker_mirrored" or task_type == "chief" or (task_type == "worker" and index == 0)
    return TensorFlowRuntime(strategy, kind, device, resolve_xla(xla_flag, device),
                   resolve_policy(precision_flag, device), is_chief, index)
