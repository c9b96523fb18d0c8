"""`python -m keras_regnet`: print the zoo table computed from the specs (no TensorFlow needed)."""

from __future__ import annotations

import sys

from keras_regnet.complexity import complexity
from keras_regnet.zoo import ZOO


def zoo_table() -> str:
    """Markdown table: model, stage depths/widths, flops, params, acts, pycls's published top-1 error;
    the models beyond the paper are marked `*` (they have no pycls weights)."""
    rows = [
        "| model | depths | widths | group widths | flops (M) | params (M) | acts (M) | top-1 err (%) |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for entry in ZOO.values():
        spec = entry.spec()
        cx = complexity(spec)
        name = f"{entry.display_name} *" if entry.beyond_paper else entry.display_name
        err = "-" if entry.top1_err is None else f"{entry.top1_err:.2f}"
        rows.append(
            f"| {name} | {spec.depths} | {spec.widths} | {spec.group_widths} "
            f"| {cx.flops / 1e6:,.1f} | {cx.params / 1e6:.2f} | {cx.acts / 1e6:.2f} | {err} |"
        )
    rows.append("")
    rows.append("`*` beyond the paper: " + "; ".join(f"{e.display_name}: {e.beyond_paper}"
                                                       for e in ZOO.values() if e.beyond_paper))
    return "\n".join(rows)


def main() -> int:
    print(zoo_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
