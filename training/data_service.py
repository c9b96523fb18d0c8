"""`python -m training.data_service`: a tf.data service dispatcher or worker for `--data_service`.

    python -m training.data_service --role=dispatcher --port=5050 [--work_dir=/shared/dispatcher]
    python -m training.data_service --role=worker --dispatcher=HOST:5050 --port=5051 [--host=NAME]
    python -m training.main --dataset=tfrecord --data_dir=... --data_service=grpc://HOST:5050

Each starts TensorFlow's own server and serves until killed. With --work_dir the dispatcher runs in
fault-tolerant mode (its journal lives there, so a restarted dispatcher resumes its jobs). A worker
needs the training code and read access to --data_dir; trainers reach it at --host:--port.
`--port=0` picks a free port; the first line printed says which. A worker started before its dispatcher
waits for it (--dispatcher_timeout, default 120 s).

Security: TensorFlow's tf.data service servers speak unauthenticated, unencrypted gRPC and listen on every
interface (DispatcherConfig and WorkerConfig have no bind-address field in TF 2.21): whoever reaches a port
can register a worker and feed the run its images, or read the data. Run them on a private network, or
firewall the dispatcher's and workers' ports to the cluster's own hosts.
"""

from __future__ import annotations

import socket

from absl import app, flags

from keras_regnet import cli_help
from keras_regnet.errors import ConfigError, cli_boundary
from training.core.service_address import parse_address, wait_until_reachable

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
    flags.DEFINE_float("dispatcher_timeout", 120.0, "Worker: seconds to wait for the dispatcher to start "
                       "(a worker may start first); past this, one error line.", lower_bound=0.0)
    flags.mark_flag_as_required("role")


def serve_dispatcher(port: int, work_dir: str | None, worker_timeout_s: float = 10.0) -> object:
    """A started DispatchServer (fault-tolerant when `work_dir` is set)."""
    import tensorflow as tf

    service = tf.data.experimental.service
    config = service.DispatcherConfig(port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir),
                                      worker_timeout_ms=int(worker_timeout_s * 1000))
    return service.DispatchServer(config)


def serve_worker(dispatcher: str, port: int, host: str, dispatcher_timeout: float = 120.0) -> object:
    """A started WorkerServer registered with `dispatcher`, once it answers (waiting up to
    `dispatcher_timeout` seconds for it, so workers may start before their dispatcher)."""
    wait_until_reachable("dispatcher", dispatcher, dispatcher_timeout,
                         log=lambda line: print(f"worker: {line}", flush=True))
    dispatcher_host, dispatcher_port = parse_address("dispatcher", dispatcher)
    import tensorflow as tf

    service = tf.data.experimental.service
    config = service.WorkerConfig(dispatcher_address=f"{dispatcher_host}:{dispatcher_port}", port=port,
                                  worker_address=f"{host}:%port%",
                                  dispatcher_timeout_ms=max(1000, int(dispatcher_timeout * 1000)))
    return service.WorkerServer(config)


def exposure(port: int | str) -> str:
    """What the start line says about who can reach the server (TensorFlow binds every interface)."""
    return (f"unauthenticated gRPC on all interfaces: any host reaching port {port} can register workers, feed the "
            f"run its own images or read the data; keep it on a private network or firewall port {port} to the "
            f"trainers, workers and dispatcher (docs/training.md)")


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
              f"{f' (journal in {FLAGS.work_dir})' if FLAGS.work_dir else ''}; {exposure(port)}", flush=True)
    else:
        if not FLAGS.dispatcher:
            raise ConfigError("--role=worker needs --dispatcher=HOST:PORT (the dispatcher's address)")
        if FLAGS.work_dir:
            raise ConfigError("--work_dir is the dispatcher's journal; drop it with --role=worker")
        host = FLAGS.host or socket.gethostname()
        server = serve_worker(FLAGS.dispatcher, FLAGS.port, host, FLAGS.dispatcher_timeout)
        port = server._address.rsplit(":", 1)[1]
        print(f"worker listening on {host}:{port}, registered with {FLAGS.dispatcher}; {exposure(port)}",
              flush=True)
    server.join()
    return 0


if __name__ == "__main__":
    define_flags()
    cli_help.run(main)
