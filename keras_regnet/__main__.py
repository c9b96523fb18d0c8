"""`python -m keras_regnet`: print the zoo table computed from the specs, then the weights table with
each weight's licence (no TensorFlow needed)."""

from __future__ import annotations

import sys

from keras_regnet.complexity import complexity
from keras_regnet.presets import PRESETS
from keras_regnet.zoo import ZOO, get_entry


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


def weights_table() -> str:
    """Markdown table of every published weight: tagged name, model, licence, top-1, eval size and crop,
    classes; a non-permissive licence is marked `!` (loading it logs the licence once)."""
    rows = [
        "| weights | model | licence | top-1 (%) | eval size | crop | interpolation | classes |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for row in PRESETS.values():
        licence = row.licence if row.permissive else f"{row.licence} !"
        top1 = "-" if row.top1 is None else f"{row.top1:.2f}"
        classes = "headless" if row.headless else str(row.num_classes)
        rows.append(f"| {row.name} | {get_entry(row.arch).display_name} | {licence} | {top1} | {row.input_size} "
                    f"| {row.crop_fraction} | {row.interpolation} | {classes} |")
    rows.append("")
    rows.append("`!` not a permissive licence (cc-by-nc-4.0: non-commercial; seer-license: SEER's own terms); "
                "loading such weights logs the licence and source once.")
    return "\n".join(rows)


def main() -> int:
    print(zoo_table())
    print()
    print(weights_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
