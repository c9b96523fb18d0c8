"""Subprocess runs started together and read one by one, so tests that each spawn a TensorFlow (or JAX)
process overlap their imports and tracing on the second core instead of waiting for one another.

A module-scoped fixture builds a `Prefetch` with the runs its module's *selected* tests need (see
`selected_params`), each test then takes its own result with `get(key)`; a run nobody selected never
starts, and a test run alone still gets its result (started on demand).
"""

from __future__ import annotations

import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Hashable

MAX_PARALLEL = 3  # the CI machine has 2 cores; a third run fills the gaps of import and tracing


class Prefetch:
    """Runs keyed by a hashable: `submit(key, fn)` starts `fn()` in a pool, `get(key)` waits for its value."""

    def __init__(self, make: Callable[[Hashable], Callable[[], object]], keys=(), parallel: int = MAX_PARALLEL):
        self._make = make
        self._pool = ThreadPoolExecutor(max_workers=parallel)
        self._futures: dict[Hashable, Future] = {}
        for key in keys:
            self.submit(key)

    def submit(self, key: Hashable) -> Future:
        if key not in self._futures:
            self._futures[key] = self._pool.submit(self._make(key))
        return self._futures[key]

    def get(self, key: Hashable):
        return self.submit(key).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def run(cmd: list[str], **kwargs) -> Callable[[], subprocess.CompletedProcess]:
    """A deferred `subprocess.run(cmd, capture_output=True, text=True, **kwargs)`."""
    return lambda: subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def selected_params(request, function: str, name: str) -> list:
    """The values of parameter `name` of test `function` in the requesting module, for the selected items only."""
    values = []
    for item in request.session.items:
        if item.module is request.module and item.originalname == function and hasattr(item, "callspec"):
            values.append(item.callspec.params[name])
    return values


def selected(request, *functions: str) -> set[str]:
    """Which of `functions` (test names in the requesting module) are among the selected items."""
    names = {item.originalname for item in request.session.items if item.module is request.module}
    return {f for f in functions if f in names}
