"""tf.data service addresses: parsing `grpc://HOST:PORT` and a bounded-time reachability probe.

Pure Python (no TensorFlow), so flag validation and the service CLI check an address in
milliseconds, and a dispatcher that is down is one error line within `timeout_s` instead of the
TensorFlow client's minutes of silent retries.
"""

from __future__ import annotations

import socket
import time
from typing import Callable

from keras_regnet.errors import ConfigError, DataError

PROTOCOL = "grpc"
PROBE_TIMEOUT_S = 5.0


def parse_address(flag: str, address: str) -> tuple[str, int]:
    """(host, port) of `grpc://HOST:PORT` or `HOST:PORT`; ConfigError naming `--flag` otherwise."""
    allowed = f"use {PROTOCOL}://HOST:PORT or HOST:PORT with a port in 1..65535"
    if not isinstance(address, str) or not address:
        raise ConfigError(f"--{flag}={address!r} is not an address; {allowed}")
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = PROTOCOL, address
    if scheme != PROTOCOL:
        raise ConfigError(f"--{flag}={address!r} uses protocol {scheme!r}; only {PROTOCOL} is served; {allowed}")
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or "/" in rest or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--{flag}={address!r} is not an address; {allowed}")
    return host, int(port)


def service_url(flag: str, address: str) -> str:
    """The canonical `grpc://HOST:PORT` form of a validated address."""
    host, port = parse_address(flag, address)
    return f"{PROTOCOL}://{host}:{port}"


def check_reachable(flag: str, address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """DataError within ~`timeout_s` unless something accepts TCP connections at the address."""
    host, port = parse_address(flag, address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if isinstance(e, socket.gaierror):
            reason = f"unknown host ({e.strerror})"
        raise DataError(f"--{flag}={address!r}: no tf.data service dispatcher answers at {host}:{port} "
                        f"({reason}); start one with `python -m training.data_service --role=dispatcher "
                        f"--port={port}` or fix the address") from e


def wait_until_reachable(flag: str, address: str, timeout_s: float, log: Callable[[str], None] = print,
                         poll_s: float = 1.0) -> None:
    """Wait up to `timeout_s` for something to accept TCP connections at the address (logging once that it
    waits), so a worker may start before its dispatcher; past the bound, check_reachable's DataError."""
    deadline = time.monotonic() + timeout_s
    try:
        check_reachable(flag, address, timeout_s=min(PROBE_TIMEOUT_S, max(timeout_s, 0.1)))
        return
    except DataError:
        if timeout_s <= 0:
            raise
    host, port = parse_address(flag, address)
    log(f"waiting up to {timeout_s:g} s (--dispatcher_timeout) for the dispatcher at {host}:{port} to start")
    while True:
        remaining = deadline - time.monotonic()
        try:
            check_reachable(flag, address, timeout_s=min(PROBE_TIMEOUT_S, max(remaining, 0.1)))
            return
        except DataError:
            if time.monotonic() + poll_s >= deadline:
                raise
        time.sleep(poll_s)
