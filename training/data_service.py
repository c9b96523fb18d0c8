"""`python -m training.data_service`: a tf.data service dispatcher or worker for `--data_service`.

    python -m training.data_service --role=dispatcher --port=5050 [--work_dir=/shared/dispatcher]
    python -m training.data_service --role=worker --dispatcher=HOST:5050 --port=5051 [--host=NAME]
    python -m training.main --dataset=tfrecord --data_dir=... --data_service=grpc://HOST:5050

Each starts TensorFlow's own server and serves until killed. With --work_dir the dispatcher runs in
fault-tolerant mode (its journal lives there, so a restarted dispatcher resumes its jobs). A worker
needs the training code and read access to --data_dir; trainers reach it at --host:--port.
`--port=0` picks a free port; the first line printed says which.
"""

from __future__ import annotations

import socket

from absl import app, flags

from keras_regnet import cli_help
from keras_regnet.errors import ConfigError, cli_boundary
from training.core.service_address import check_reachable, parse_address

FLAGS = flags.FLAGS
ROLES = ("dispatcher", "worker")


def define_flags() -> None:
    """The CLI's flags (defined when run, as the other library-style CLIs)."""
    flags.DEFINE_enum("role", None, list(ROLES), "dispatcher: the one coordinator; worker: runs the transform.")
    flags.DEFINE_integer("port", 5050, "Port to serve on (0: a free one, printed on start-up).", lower_bound=0,
                         upper_bound=65535)
    flags.DEFINE_string("work_dir", None, "Dispatcher: directory for its fault-tolerant journal (a shared or "
                        "persistent path); unset: state in memory only.")
    flags.DEFINE_float("worker_timeout_s", 10.0, "Dispatcher: a worker silent this long is dropped and its "
                       "unfinished files of a pass are lost (counted as skipped images by the trainer).",
                       lower_bound=0.1)
    flags.DEFINE_string("dispatcher", None, "Worker: the dispatcher's HOST:PORT or grpc://HOST:PORT.")
    flags.DEFINE_string("host", None, "Worker: the name trainers reach it by (default: this machine's hostname).")
    flags.mark_flag_as_required("role")


def serve_dispatcher(port: int, work_dir: str | None, worker_timeout_s: float = 10.0) -> object:
    """A started DispatchServer (fault-tolerant when `work_dir` is set)."""
    import tensorflow as tf

    service = tf.data.experimental.service
    config = service.DispatcherConfig(port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir),
                                      worker_timeout_ms=int(worker_timeout_s * 1000))
    return service.DispatchServer(config)


def serve_worker(dispatcher: str, port: int, host: str) -> object:
    """A started WorkerServer registered with `dispatcher` (checked reachable first)."""
    check_reachable("dispatcher", dispatcher)
    dispatcher_host, dispatcher_port = parse_address("dispatcher", dispatcher)
    import tensorflow as tf

    service = tf.data.experimental.service
    config = service.WorkerConfig(dispatcher_address=f"{dispatcher_host}:{dispatcher_port}", port=port,
                                  worker_address=f"{host}:%port%")
    return service.WorkerServer(config)


@cli_boundary
def main(argv: list[str]) -> int:
    """Start the server named by --role, print where it listens, serve until killed."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.role == "dispatcher":
        if FLAGS.dispatcher or FLAGS.host:
            raise ConfigError("--dispatcher and --host are worker flags; drop them with --role=dispatcher")
        server = serve_dispatcher(FLAGS.port, FLAGS.work_dir, FLAGS.worker_timeout_s)
        port = int(server.target.rsplit(":", 1)[1])
        print(f"dispatcher listening on grpc://{socket.gethostname()}:{port}"
              f"{f' (journal in {FLAGS.work_dir})' if FLAGS.work_dir else ''}", flush=True)
    else:
        if not FLAGS.dispatcher:
            raise ConfigError("--role=worker needs --dispatcher=HOST:PORT (the dispatcher's address)")
        if FLAGS.work_dir:
            raise ConfigError("--work_dir is the dispatcher's journal; drop it with --role=worker")
        host = FLAGS.host or socket.gethostname()
        server = serve_worker(FLAGS.dispatcher, FLAGS.port, host)
        port = server._address.rsplit(":", 1)[1]
        print(f"worker listening on {host}:{port}, registered with {FLAGS.dispatcher}", flush=True)
    server.join()
    return 0


if __name__ == "__main__":
    define_flags()
    cli_help.run(main)
