"""Where the JAX engine runs: processes (jax.distributed), the device mesh, and moving arrays on and off it.

Data parallel over every device of every process: a 1-D mesh named "data"; batches are split along
it, the training state is replicated. Each process feeds its own share of the global batch
(`make_array_from_process_local_data`), so several hosts read disjoint input as tf.distribute's
input pipelines do. Imports JAX only (no TensorFlow, no Keras).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from keras_regnet.errors import ConfigError
from training.core.cluster_launch import cluster_launch

_INITIALIZED = False


def initialize_processes(coordinator_address: str | None, num_processes: int | None,
                         process_id: int | None) -> None:
    """jax.distributed.initialize from the flags or $JAX_COORDINATOR_ADDRESS/$JAX_NUM_PROCESSES/$JAX_PROCESS_ID.

    Without a coordinator anywhere this is one process (JAX's own cluster detection still applies on
    TPU VMs and SLURM when jax.distributed is initialised by the launcher). Idempotent.
    """
    global _INITIALIZED
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if _INITIALIZED:
        return
    if not address:
        launch = cluster_launch(os.environ)
        if launch:  # N processes that would otherwise become N independent runs in one model_dir
            _initialize_from_cluster(launch)
        return
    count = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    index = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    if count is None or index is None:
        raise ConfigError(f"--coordinator_address={address!r} needs --num_processes and --process_id (or "
                          f"$JAX_NUM_PROCESSES and $JAX_PROCESS_ID) on every process")
    # Collectives between the processes' CPU devices (tests, CPU clusters); GPUs and TPUs use their own.
    # Set before initialize: asking JAX for its backend here would start it too early.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index,
                                   initialization_timeout=120)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"jax.distributed could not start with --coordinator_address={address!r}, "
                          f"--num_processes={count}, --process_id={index}: {' '.join(str(e).split())[:300]}") from e
    _INITIALIZED = True


_FLAGS = "--coordinator_address=HOST:PORT --num_processes=N --process_id=I (or $JAX_COORDINATOR_ADDRESS, " \
         "$JAX_NUM_PROCESSES, $JAX_PROCESS_ID)"


def _initialize_from_cluster(launch: str) -> None:
    """jax.distributed.initialize() with JAX's own cluster detection (SLURM, Open MPI); refuse in one line."""
    global _INITIALIZED
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(initialization_timeout=120)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"this process is one of several started by {launch}, but jax.distributed could not "
                          f"find its coordinator ({' '.join(str(e).split())[:200]}); pass {_FLAGS} on every "
                          f"process, or start a single process") from e
    _INITIALIZED = True


def agree_on_checkpoint(step: int | None, model_dir: str) -> None:
    """Every process resumes the same step: process 0's, or all stop with one line if any differs."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    steps = np.asarray(multihost_utils.process_allgather(np.int64(-1 if step is None else step))).ravel()
    if (steps != steps[0]).any():
        seen = ", ".join(f"process {i}: {'none' if s < 0 else f'ckpt-{s}'}" for i, s in enumerate(steps))
        raise ConfigError(f"the processes see different latest checkpoints in --model_dir={model_dir!r} ({seen}); "
                          f"every process needs the same --model_dir on shared storage; stopped all of them")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as e:
        raise ConfigError(f"${name}={value!r} must be an integer") from e


@dataclass(frozen=True)
class DeviceLayout:
    """The mesh over the run's devices and the two shardings the engine uses."""

    mesh: Mesh

    @property
    def devices(self) -> int:
        """Devices the global batch is split over (all processes)."""
        return self.mesh.devices.size

    @property
    def process_index(self) -> int:
        return jax.process_index()

    @property
    def process_count(self) -> int:
        return jax.process_count()

    @property
    def is_chief(self) -> bool:
        """Process 0 writes checkpoints, logs and the exported model."""
        return jax.process_index() == 0

    @property
    def platform(self) -> str:
        """'cpu', 'gpu' or 'tpu' (JAX's name of the devices' kind)."""
        return self.mesh.devices.flat[0].platform

    @property
    def batch(self) -> NamedSharding:
        """Leading (batch) axis split over the devices."""
        return NamedSharding(self.mesh, PartitionSpec("data"))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())


@dataclass(frozen=True)
class JaxRuntime:
    """What the loop and the run summary read of the JAX engine's setup (TensorFlowRuntime's counterpart)."""

    layout: DeviceLayout
    policy: str  # Keras dtype policy: float32 | mixed_bfloat16
    kind: str = "jax_data_parallel"
    xla: bool = True

    @property
    def is_chief(self) -> bool:
        return self.layout.is_chief

    @property
    def replicas(self) -> int:
        return self.layout.devices


DETERMINISTIC_GPU_FLAG = "--xla_gpu_deterministic_ops=true"


def request_deterministic_gpu_ops() -> bool:
    """--deterministic on GPUs: add XLA's deterministic-ops flag to $XLA_FLAGS (read when JAX starts its backends).

    Deterministic reductions and scatter on the GPU cost some speed; the data order, augmentation and
    initialisation are made deterministic elsewhere (the seed). False when the backends had already
    started (the flag then cannot apply to this process).
    """
    from jax._src import xla_bridge

    flags = os.environ.get("XLA_FLAGS", "")
    if DETERMINISTIC_GPU_FLAG.split("=")[0] not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {DETERMINISTIC_GPU_FLAG}".strip()
    return not xla_bridge.backends_are_initialized()


def make_layout(strategy: str = "auto") -> DeviceLayout:
    """All devices of all processes (auto, mirrored), or the first local device only (one_device)."""
    devices = jax.devices()
    if strategy == "one_device":
        if jax.process_count() > 1:
            raise ConfigError("--strategy=one_device cannot run on several JAX processes; use --strategy=auto")
        devices = devices[:1]
    return DeviceLayout(Mesh(np.array(devices), ("data",)))


def check_batch(global_batch: int, layout: DeviceLayout) -> None:
    """ConfigError naming --batch_size when it does not split evenly over the devices."""
    if global_batch % layout.devices:
        raise ConfigError(f"--batch_size={global_batch} is not divisible by the {layout.devices} devices; "
                          f"use a multiple of {layout.devices}")


def replicate(tree: Any, layout: DeviceLayout) -> Any:
    """Every leaf (numpy or JAX array) as a global array held whole on every device."""
    sharding = layout.replicated

    def put(x: Any) -> Any:
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree_util.tree_map(put, tree)


def shard_batch(local: Any, layout: DeviceLayout) -> Any:
    """This process's share of a global batch (numpy arrays) as global arrays split over the devices."""
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(layout.batch, np.asarray(x)), local)


def to_host(tree: Any) -> Any:
    """Replicated global arrays (state, metrics) as numpy, read from this process's first copy."""
    def fetch(x: Any) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = x.addressable_data(0)
        return np.asarray(x)

    return jax.tree_util.tree_map(fetch, tree)


def host_copy(tree: Any) -> Any:
    """to_host() as numpy arrays that own their memory: safe to keep while later steps donate the device buffers."""
    return jax.tree_util.tree_map(np.array, to_host(tree))


def prefetch_to_devices(batches: Iterable[Any], layout: DeviceLayout, size: int = 2) -> Iterator[Any]:
    """Put the next `size` batches on the devices ahead of the step that reads them (transfers overlap compute)."""
    queue: collections.deque = collections.deque()
    iterator = iter(batches)
    for batch in iterator:
        queue.append(shard_batch(batch, layout))
        if len(queue) >= size:
            yield queue.popleft()
    while queue:
        yield queue.popleft()
