"""One background write at a time: the loop hands a write over and goes on; its error comes back in one line.

`BackgroundWriter.submit(write)` waits for the previous write (at most one in flight, so writes never
overlap and their order is the submit order), then runs `write` on a thread. A write's exception (the
one-line `WriteFailed` of training.core.write_guard) is kept and raised on the caller's thread by the
next `submit` or `join`, so a failed background checkpoint stops the run as a synchronous one does.
Backend-free: the engine hands over a closure over a host copy of its state.
"""

from __future__ import annotations

import threading
from typing import Callable


class BackgroundWriter:
    """Runs writes on a thread, one at a time; `join()` waits for the last and re-raises its error."""

    def __init__(self, name: str = "checkpoint-writer") -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def in_flight(self) -> bool:
        """Whether a write is still running."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, write: Callable[[], None]) -> None:
        """Wait for the previous write (raising its error), then start `write` on a thread and return."""
        self.join()

        def run() -> None:
            try:
                write()
            except BaseException as e:  # handed to the caller's thread by join()
                self._error = e

        # Not a daemon: an interpreter exiting without join() still finishes the write (it is atomic either way).
        self._thread = threading.Thread(target=run, name=self.name, daemon=False)
        self._thread.start()

    def join(self) -> None:
        """Wait for the write in flight, if any; raise the exception it ended with."""
        self.wait()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def wait(self) -> BaseException | None:
        """Wait for the write in flight without raising; its exception (kept for join) or None."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._error
