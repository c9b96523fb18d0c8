"""`--help` for the absl CLIs: the CLI's own flags, grouped by the module that defines them as
`--helpfull` groups them, without absl's own flags, and exit code 0 (absl's `--help` lists only the
main module's key flags, none for generated flags, and exits 1)."""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import app, flags

HELP_ARGS = ("-h", "-?", "--help", "--helpshort")


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
    text = "\n\n".join(g for g in groups if g.strip())
    return f"{doc.strip()}\n\n{text}" if doc else text


def run(main: Callable[[list[str]], int | None], doc: str | None = None) -> None:
    """`app.run(main)`, except that --help/-h prints own_flags_help(doc) and exits 0."""
    if wants_help(sys.argv[1:]):
        print(own_flags_help(doc if doc is not None else sys.modules["__main__"].__doc__))
        sys.exit(0)
    app.run(main)
