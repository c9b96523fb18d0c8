"""The lines of a CLI's output that are not its own: TensorFlow's, absl's and LiteRT's log lines."""

from __future__ import annotations

import re

FOREIGN = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] "  # absl/TSL C++ lines and absl's Python handler lines
    r"|[IWEF] (?:tensorflow|external|xla|tsl)/"  # older TSL format
    r"|(?:INFO|WARNING):(?:tensorflow|absl|root)?:? "  # Python logging's default format, TFLite's INFO:
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|fully_quantize: \d"
    r"|To enable the following instructions: )")


def foreign_lines(*outputs: str) -> list[str]:
    """The lines of `outputs` (stdout, stderr) that TensorFlow, absl or LiteRT wrote, not the CLI."""
    return [line for out in outputs for line in (out or "").splitlines() if FOREIGN.match(line)]


def assert_quiet(run) -> None:
    """A finished subprocess.run(..., text=True, capture_output=True) of a CLI printed only its own lines."""
    noise = foreign_lines(run.stdout, run.stderr)
    assert not noise, f"{len(noise)} library log lines in the CLI's output:\n" + "\n".join(noise[:20])
