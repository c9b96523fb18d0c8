"""Typed errors: what went wrong (config, weights, data, export), each a ValueError, plus the CLI boundary.

Library code raises these and chains the cause (`raise DataError(...) from err`); every CLI catches
`RegNetError` once, in `cli_boundary`, and prints one line whose prefix says which kind it was.
Anything that caught ValueError before still catches them all.
"""

from __future__ import annotations

import sys
from typing import Callable


class RegNetError(ValueError):
    """Base of keras-regnet's errors; the message names the bad value and what is allowed."""

    kind = "error"


class ConfigError(RegNetError):
    """A bad flag, config field, model name or network spec."""

    kind = "config error"


class WeightsError(RegNetError):
    """Weights that cannot be found, read, converted or that do not fit the model."""

    kind = "weights error"


class DataError(RegNetError):
    """A dataset or image input that is missing, corrupt or does not match what was asked."""

    kind = "data error"


class ExportError(RegNetError):
    """An export that would produce a wrong or silently slow artefact."""

    kind = "export error"


def one_line(err: BaseException) -> str:
    """The CLI's one-line message: the kind, the message and the first chained cause, if any."""
    kind = getattr(err, "kind", "error")
    text = " ".join(str(err).split())
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" (cause: {type(cause).__name__}: {' '.join(str(cause).split())})"
    return f"FATAL {kind}: {text}"


def print_missing_dependency(err: ImportError) -> bool:
    """Print the one-line install hint if `err` is a missing optional module; False for any other ImportError."""
    from keras_regnet.extras import missing_dependency_line

    line = missing_dependency_line(err)
    if line is not None:
        print(line, file=sys.stderr)
    return line is not None


def cli_boundary(main: Callable[[list[str]], int | None], exit_code: int = 2) -> Callable[[list[str]], int | None]:
    """Wrap an absl main: a RegNetError (or a plain ValueError) becomes one line on stderr and exit_code;
    a missing optional dependency (raised, or the cause of one) one line naming what to install, exit code 2.
    Other errors keep their traceback."""

    def wrapped(argv: list[str]) -> int | None:
        try:
            return main(argv)
        except ValueError as err:
            from keras_regnet.extras import missing_module

            print(one_line(err), file=sys.stderr)
            return 2 if missing_module(err) else exit_code  # caused by a missing optional dependency: 2
        except ImportError as err:
            if not print_missing_dependency(err):
                raise
            return 2

    wrapped.__name__ = getattr(main, "__name__", "main")
    wrapped.__doc__ = main.__doc__
    return wrapped
