"""What every absl CLI of the project shares, through `run(main)`:

- `--help`: the CLI's own flags, grouped by the module that defines them as `--helpfull` groups them,
  without absl's own flags, and exit code 0 (absl's `--help` lists only the main module's key flags,
  none for generated flags, and exits 1).
- Quiet logs: the CLI prints its own progress and results; TensorFlow's C++ logs, LiteRT's and the
  converter's native chatter and absl/Python INFO lines stay out unless absl's `--verbosity` (`-v`)
  asks for INFO (`-v 0`, `-v=0`, `--verbosity=0`; `-v 1` and up for DEBUG/vlog). Native libraries write
  straight to file descriptor 2, partly from static initializers that run on `import tensorflow` before
  TF_CPP_MIN_LOG_LEVEL is read, so besides that variable a filter process reads fd 2 and drops only the
  native INFO/WARNING line shapes (errors, tracebacks and everything else pass).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from typing import Callable, Sequence

from absl import app, flags

HELP_ARGS = ("-h", "-?", "--help", "--helpshort")
VERBOSITY_ARGS = ("--verbosity", "-verbosity", "--v", "-v")  # absl's flag and its short name
LOGS_HELP = "Logs: TensorFlow's and absl's INFO lines are hidden; -v 0 shows them, -v 1 and up add DEBUG."


def wants_help(argv: Sequence[str]) -> bool:
    """True when the command line asks for help (before a `--` that ends the flags)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg in HELP_ARGS:
            return True
    return False


def own_flags_help(doc: str | None = None, flag_values: flags.FlagValues = flags.FLAGS) -> str:
    """The CLI's docstring, then its flags per defining module (absl's and TensorFlow's left out)."""
    groups = []
    for module, _ in sorted(flag_values.flags_by_module_dict().items()):
        if module.split(".")[0] in ("absl", "tensorflow"):
            continue
        groups.append(flag_values.module_help(module))
    text = "\n\n".join(g for g in groups if g.strip()) + "\n\n" + LOGS_HELP
    return f"{doc.strip()}\n\n{text}" if doc else text


def requested_verbosity(argv: Sequence[str]) -> int | None:
    """The --verbosity the command line gives (absl's spellings: --verbosity=0, -v 0, -v=0), else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, eq, raw = arg.partition("=")
        if name in VERBOSITY_ARGS:
            raw = raw if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            try:
                value = int(raw)
            except ValueError:
                pass  # absl names the bad value when it parses the flags
    return value


def wants_library_logs(argv: Sequence[str], environ: dict | None = None) -> bool:
    """True when --verbosity asks for INFO or more, or TF_CPP_MIN_LOG_LEVEL is set below 2 by the user."""
    environ = os.environ if environ is None else environ
    verbosity = requested_verbosity(argv)
    return (verbosity is not None and verbosity >= 0) or environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1")


# The native log lines the filter drops: absl/TSL C++ INFO and WARNING lines (`I0000 00:00:17.. 123
# file.cc:12] ...`; Python's absl lines name a .py file and are left to the logging level), absl's
# notice before InitializeLog, the cuInit error of a CUDA build on a machine without a GPU, LiteRT's
# XNNPACK notice, the TFLite converter's quantizer printf and cpu_feature_guard's second line.
NATIVE_NOISE = (rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w.-]+\.(?:cc|cpp|h):\d+\] "
                rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                rb"|E\d{4} [^\]]*cuda_platform\.cc:\d+\] failed call to cuInit: "
                rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
                rb"|fully_quantize: \d+, inference_type: "
                rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags)")

_FILTER = r"""
import os, re, signal
for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"):  # outlive Ctrl-C: drain the CLI's last words
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
noise = re.compile(%r)
pending = b""

def write(data):
    while data:
        try:
            data = data[os.write(1, data):]
        except InterruptedError:
            continue
        except OSError:
            return  # the reader went away: keep draining so the CLI never blocks on fd 2

while True:
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    if not chunk:
        break
    *lines, pending = (pending + chunk).split(b"\n")
    out = b"".join(line + b"\n" for line in lines if not noise.match(line))
    if pending and (b"\r" in pending or pending[:1] not in (b"I", b"W", b"E", b"f", b"T")):
        out, pending = out + pending, b""  # a progress bar's partial line: show it now
    write(out)
if pending and not noise.match(pending):
    write(pending)
"""

_stderr_filter: subprocess.Popen | None = None


def filter_native_stderr() -> None:
    """Route fd 2 through a small filter process that drops NATIVE_NOISE lines (POSIX only, once).

    A process, not a thread, so that what a crashing CLI writes last (a fatal log, a faulthandler
    dump) is still drained and shown; the children the CLI starts inherit the filtered fd 2."""
    global _stderr_filter
    if _stderr_filter is not None or os.name != "posix":
        return
    sys.stderr.flush()
    try:
        real_stderr = os.dup(2)
        filt = subprocess.Popen([sys.executable, "-S", "-c", _FILTER % NATIVE_NOISE], stdin=subprocess.PIPE,
                                stdout=real_stderr, close_fds=True)
    except OSError:
        return  # no filter, no harm: the lines stay
    finally:
        os.close(real_stderr)
    os.dup2(filt.stdin.fileno(), 2)
    filt.stdin.close()
    _stderr_filter = filt


def quiet_library_logs(argv: Sequence[str]) -> bool:
    """Unless `wants_library_logs(argv)`: TensorFlow's C++ logs below ERROR off (TF_CPP_MIN_LOG_LEVEL=2,
    before TensorFlow is imported) and the native noise filtered. True when it quieted."""
    if wants_library_logs(argv):
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    filter_native_stderr()
    return True


def python_logs_at_warning(main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int | None]:
    """`main`, run with the root logger at WARNING unless --verbosity was given (absl leaves it at INFO,
    where TensorFlow's SavedModel code logs sharding times and fingerprints through absl's handler)."""

    @functools.wraps(main)
    def quiet_main(argv: list[str]) -> int | None:
        from absl import logging

        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        return main(argv)

    return quiet_main


def run(main: Callable[[list[str]], int | None], doc: str | None = None) -> None:
    """`app.run(main)`, except that --help/-h prints own_flags_help(doc) and exits 0, and that the
    libraries' logs stay quiet unless --verbosity/-v asks for them (`quiet_library_logs`)."""
    if wants_help(sys.argv[1:]):
        print(own_flags_help(doc if doc is not None else sys.modules["__main__"].__doc__))
        sys.exit(0)
    quiet_library_logs(sys.argv[1:])
    app.run(python_logs_at_warning(main))
