"""tf.data service on 127.0.0.1: every record served once per pass, a worker lost mid-epoch, errors."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_regnet.errors import ConfigError, DataError
from tests.helpers import prefetch
from tests.helpers.paths import REPO_ROOT
from training.core.config import TrainConfig, validate
from training.core.service_address import check_reachable, parse_address
from training.data import imagenet
from training.data.pipeline import INVALID_LABEL, epoch_seed_of
from training.data.service import DataService

ROOT = str(REPO_ROOT)
SERVICE = tf.data.experimental.service


def _example(image: bytes, label: int) -> bytes:
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shards(root: str, shards: int, per_shard: int) -> None:
    """`shards` train shards whose records carry labels 1..shards*per_shard (each once), one eval shard."""
    rng = np.random.default_rng(0)
    for split, count in (("train", shards), ("validation", 1)):
        for s in range(count):
            with tf.io.TFRecordWriter(os.path.join(root, f"{split}-{s:05d}-of-{count:05d}")) as w:
                for i in range(per_shard):
                    pixels = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
                    w.write(_example(tf.io.encode_jpeg(pixels).numpy(), 1 + s * per_shard + i))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    """An in-process dispatcher and two workers on 127.0.0.1, stopped afterwards."""
    dispatcher = SERVICE.DispatchServer(SERVICE.DispatcherConfig(port=0))
    address = dispatcher.target.rsplit(":", 1)[1]
    workers = [SERVICE.WorkerServer(SERVICE.WorkerConfig(
        dispatcher_address=f"127.0.0.1:{address}", port=0, worker_address="127.0.0.1:%port%")) for _ in range(2)]
    yield f"grpc://127.0.0.1:{address}", workers
    for w in workers:
        w._stop()
    dispatcher._stop()


def _labels(ds: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([labels.numpy() for _, labels in ds])


@pytest.mark.parametrize("image_dtype", ["float32", "bfloat16"])
def test_two_workers_serve_every_record_exactly_once(tmp_path, cluster, image_dtype):
    address, _ = cluster
    _write_shards(str(tmp_path), shards=4, per_shard=10)
    source = imagenet.tfrecord_source(str(tmp_path), train_examples=40, eval_examples=10)
    service = DataService(address, "test")
    ds = service.train_dataset(source, None, batch_size=4, epoch=0, start_batch=0, num_batches=10,
                               image_size=16, seed=0, image_dtype=image_dtype)
    # What the workers send is what the trainer consumes: no cast on the trainer's side (issue 34, item 2).
    assert ds.element_spec[0].dtype == image_dtype and ds.element_spec[1].dtype == tf.int32
    batches = list(ds)
    assert len(batches) == 10 and all(b[0].shape == (4, 16, 16, 3) for b in batches)
    labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(np.sort(labels), np.arange(40))  # 1..40 shifted by the offset, once each
    # Each image is the local train transform seeded by (seed, epoch, its bytes), sent in the trainer's dtype.
    payloads = {int(y): p for p, y in source.train_records(None, 0)}
    epoch_seed = tf.constant(epoch_seed_of(0, 0, None), tf.int64)
    for images, batch_labels in batches:
        for image, label in zip(images.numpy(), batch_labels.numpy()):
            payload = payloads[int(label)]
            seed = tf.stack([epoch_seed, tf.strings.to_hash_bucket_fast(payload, 2**62)])
            local = tf.cast(source.train_map(payload, seed, 16), image_dtype).numpy()
            assert image.dtype == local.dtype and image.tobytes() == local.tobytes()  # bit-equal: cast once


def test_job_names_never_repeat_and_carry_the_run_epoch_and_batch():
    service = DataService("grpc://127.0.0.1:1", "runA-seed0")
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4)
    first, second = service.job_name(ctx, 3, 17, 256), service.job_name(ctx, 3, 17, 256)
    assert first.startswith("runA-seed0-p1of2-e3-s17-b256-") and first != second
    assert DataService("grpc://127.0.0.1:1", "runA-seed0").job_name(ctx, 3, 17, 256) != first  # a restarted trainer


class _Cluster:
    """A dispatcher and two workers started by the CLI as subprocesses on 127.0.0.1 (killed at teardown)."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        dispatcher = self.start("dispatcher", "--role=dispatcher", "--port=0", "--worker_timeout_s=2")
        self.port = int(re.search(r"listening on grpc://[^:]+:(\d+)", dispatcher).group(1))
        self.worker_ports = [_free_port(), _free_port()]
        for i, port in enumerate(self.worker_ports):
            self.start(f"worker{i}", *self.worker_args(port), wait=False)
        for i in range(2):
            assert "worker listening on 127.0.0.1:" in self.first_line(f"worker{i}")

    def worker_args(self, port: int) -> list[str]:
        return ["--role=worker", f"--dispatcher=127.0.0.1:{self.port}", f"--port={port}", "--host=127.0.0.1"]

    def start(self, name: str, *args: str, wait: bool = True) -> str:
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "training.data_service", *args], cwd=ROOT,
                                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self.first_line(name) if wait else ""

    def first_line(self, name: str) -> str:
        line = self.processes[name].stdout.readline()  # printed once the server listens
        assert line, f"{name} exited with {self.processes[name].wait(timeout=60)}"
        return line

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait(timeout=60)


@pytest.fixture(scope="module")
def cli_cluster():
    cluster = _Cluster()
    yield cluster
    cluster.stop()


def test_a_worker_killed_mid_epoch_the_run_goes_on_and_lost_images_count_as_skipped(tmp_path, cli_cluster):
    _write_shards(str(tmp_path), shards=16, per_shard=8)
    source = imagenet.tfrecord_source(str(tmp_path), train_examples=128, eval_examples=8)
    ds = DataService(f"grpc://127.0.0.1:{cli_cluster.port}", "kill").train_dataset(
        source, None, batch_size=4, epoch=0, start_batch=0, num_batches=32, image_size=16, seed=0)
    labels = []
    for i, (_, batch_labels) in enumerate(ds):
        labels.extend(batch_labels.numpy())
        time.sleep(0.05)  # a trainer slower than its workers: they hold buffered batches when one dies
        if i == 2:
            cli_cluster.processes["worker1"].kill()
            cli_cluster.processes["worker1"].wait(timeout=60)
        if i == 4:  # the pass ends once the lost worker is back (same address), as a supervisor restarts it
            cli_cluster.start("worker1", *cli_cluster.worker_args(cli_cluster.worker_ports[1]))
    labels = np.array(labels)
    valid = labels[labels != INVALID_LABEL]
    assert len(labels) == 128  # every batch the run asked for
    assert len(np.unique(valid)) == len(valid)  # nothing read twice
    # The dead worker's unfinished files (none, if it had finished them: timing) come back as -1 placeholders.
    assert 12 <= len(valid) <= 128 and np.all(labels[len(valid):] == INVALID_LABEL)
    assert np.all((0 <= valid) & (valid < 128))


def _train_through_service(root, port: int, engine: str) -> subprocess.CompletedProcess:
    data = root / "data"
    data.mkdir()
    _write_shards(str(data), shards=4, per_shard=8)
    return subprocess.run([sys.executable, "-m", "training.main", "--model=regnetx_digits", "--dataset=tfrecord",
                           f"--data_dir={data}", "--train_examples=32", "--eval_examples=8", "--epochs=1",
                           "--batch_size=8", "--image_size=16", "--strategy=one_device", "--verbose=0",
                           f"--model_dir={root / 'run'}", f"--data_service=grpc://127.0.0.1:{port}",
                           f"--engine={engine}"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def service_runs(request, tmp_path_factory, cli_cluster):
    """Both engines' runs through the CLI cluster, started together when the first is asked for (after
    the worker-kill test is done with the cluster); each is its own process, directory and service job."""
    engines = prefetch.selected_params(request, "test_training_main_trains_and_evaluates_through_the_service", "engine")
    runs = prefetch.Prefetch(lambda engine: lambda: _train_through_service(
        tmp_path_factory.mktemp(f"service_{engine}"), cli_cluster.port, engine), engines)
    yield runs.get
    runs.close()


@pytest.mark.parametrize("engine", ["tensorflow", "jax"])
def test_training_main_trains_and_evaluates_through_the_service(service_runs, engine):
    out = service_runs(engine)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Done: regnetx_digits on tfrecord" in out.stdout and "4 steps" in out.stdout
    assert "Skipped undecodable images" not in out.stdout  # all 32 served, none lost


def test_addresses_are_checked_before_anything_starts():
    assert parse_address("data_service", "grpc://10.0.0.2:5050") == ("10.0.0.2", 5050)
    assert parse_address("data_service", "host-a:7") == ("host-a", 7)
    for bad in ("grpc://host", "http://host:5050", "host:0", "host:99999", "grpc://:5050", "host:port"):
        with pytest.raises(ConfigError, match=r"--data_service="):
            parse_address("data_service", bad)
    with pytest.raises(ConfigError, match="--data_service serves encoded images"):
        validate(TrainConfig(data_service="grpc://127.0.0.1:5050"))
    with pytest.raises(ConfigError, match="--deterministic cannot be combined with --data_service"):
        validate(TrainConfig(dataset="folder", data_dir=ROOT, data_service="h:1", deterministic=True))
    with pytest.raises(ConfigError, match="--target_images_per_s must be a finite number > 0"):
        validate(TrainConfig(input_only=True, target_images_per_s=-5.0))


def test_a_dispatcher_that_is_down_is_one_error_line_within_seconds():
    port = _free_port()  # nothing listens here now
    start = time.monotonic()
    with pytest.raises(DataError, match=f"no tf.data service dispatcher answers at 127.0.0.1:{port}"):
        check_reachable("data_service", f"grpc://127.0.0.1:{port}")
    assert time.monotonic() - start < 10
    # The three CLIs run side by side (each imports TensorFlow before it fails).
    worker = prefetch.run([sys.executable, "-m", "training.data_service", "--role=worker",
                           f"--dispatcher=127.0.0.1:{port}", "--port=0", "--host=127.0.0.1",
                           "--dispatcher_timeout=1"], timeout=120, cwd=ROOT)
    mains = {address: prefetch.run([sys.executable, "-m", "training.main", "--dataset=folder", f"--data_dir={ROOT}/tests",
                                    f"--data_service={address}"], timeout=120, cwd=ROOT)
             for address in (f"grpc://127.0.0.1:{port}", "grpc://127.0.0.1")}
    runs = prefetch.Prefetch(lambda key: worker if key == "worker" else mains[key], ["worker", *mains])
    try:
        out = runs.get("worker")
        assert out.returncode == 2 and "waiting up to 1 s (--dispatcher_timeout) for the dispatcher" in out.stdout
        assert out.stderr.strip().splitlines()[-1].startswith("FATAL data error: --dispatcher='127.0.0.1:")
        for address, message in ((f"grpc://127.0.0.1:{port}", "no tf.data service dispatcher answers"),
                                 ("grpc://127.0.0.1", "is not an address")):
            out = runs.get(address)
            assert out.returncode == 2 and message in out.stderr.strip().splitlines()[-1], out.stderr[-1000:]
    finally:
        runs.close()


def test_a_worker_started_before_its_dispatcher_waits_then_registers():
    port = _free_port()
    worker = subprocess.Popen([sys.executable, "-m", "training.data_service", "--role=worker",
                               f"--dispatcher=127.0.0.1:{port}", "--port=0", "--host=127.0.0.1"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dispatcher = None
    try:
        waiting = worker.stdout.readline()
        assert f"waiting up to 120 s (--dispatcher_timeout) for the dispatcher at 127.0.0.1:{port}" in waiting, \
            worker.stderr.read()[-2000:] if worker.poll() is not None else waiting
        dispatcher = SERVICE.DispatchServer(SERVICE.DispatcherConfig(port=port))  # now the dispatcher starts
        started = worker.stdout.readline()
        assert started.startswith("worker listening on 127.0.0.1:") and "unauthenticated gRPC" in started
        deadline = time.monotonic() + 60
        while dispatcher._num_workers() < 1:
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.1)
    finally:
        worker.kill()
        worker.wait()
        if dispatcher is not None:
            dispatcher._stop()


def test_the_start_lines_say_who_can_reach_the_service():
    from training.data_service import exposure

    line = exposure(5050)
    assert "unauthenticated gRPC on all interfaces" in line and "firewall port 5050" in line
    assert "private network" in line
