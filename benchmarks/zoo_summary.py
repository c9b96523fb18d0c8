"""What the zoo table says in a few lines: keras_regnet against timm, ONNX Runtime and LiteRT, as ratios.

    python benchmarks/zoo_summary.py                       # docs/results/benchmarks.csv
    python benchmarks/zoo_summary.py --csv=/tmp/my_run.csv

Reads the CSV that benchmarks/zoo_speed.py writes (no TensorFlow import) and prints, over the rows
that have both figures, the min / median / max of each ratio and the models on the losing side. A ratio
below 1 means the first figure is the faster; every ratio compares two columns of one row, measured
minutes apart in one run, which is what the shared machine allows (see docs/results/speed.md).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (label, numerator column, denominator column, what a ratio above 1 means)
RATIOS = (
    ("TF SavedModel batch 1 / timm batch 1", "tf_b1_ms", "timm_b1_ms", "slower than timm"),
    ("train step / timm train step", "train_step_s", "timm_train_step_s", "slower than timm"),
    ("ONNX Runtime batch 1 / timm batch 1", "onnxruntime_b1_ms", "timm_b1_ms", "slower than timm"),
    ("ONNX Runtime batch 1 / TF SavedModel batch 1", "onnxruntime_b1_ms", "tf_b1_ms", "ONNX Runtime slower"),
    ("LiteRT int8 / TF SavedModel batch 1", "litert_int8_ms", "tf_b1_ms", "LiteRT int8 slower"),
    ("LiteRT float32 / LiteRT int8 (XNNPACK)", "litert_f32_ms", "litert_int8_ms", "int8 faster"),
    ("LiteRT float32 without / with XNNPACK", "litert_f32_noxnnpack_ms", "litert_f32_ms", "fallback slower"),
    ("LiteRT int8 without / with XNNPACK", "litert_int8_noxnnpack_ms", "litert_int8_ms", "fallback slower"),
)


def read_table(path: str) -> tuple[str, list[dict[str, str]]]:
    """The CSV's machine comment line and its rows; ValueError naming the path when it is not a zoo table."""
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    comment = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else ""
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    if not rows or "model" not in rows[0]:
        raise ValueError(f"{path} holds no zoo rows (expected the CSV written by benchmarks/zoo_speed.py)")
    return comment, rows


def _number(row: dict[str, str], column: str) -> float | None:
    value = row.get(column)
    return float(value) if value not in (None, "") else None


def ratios(rows: list[dict[str, str]], numerator: str, denominator: str) -> list[tuple[str, float]]:
    """(model, numerator / denominator) for every row that has both figures, in row order."""
    out = []
    for row in rows:
        top, bottom = _number(row, numerator), _number(row, denominator)
        if top is not None and bottom:
            out.append((row["model"], top / bottom))
    return out


def summary(comment: str, rows: list[dict[str, str]]) -> str:
    """The printed report: machine, row count and time, then one line per ratio with its models above 1."""
    seconds = sum(_number(row, "seconds") or 0.0 for row in rows)
    lines = [comment, f"{len(rows)} models, {seconds / 60:.0f} min of row time"]
    failed = [f"{row['model']} ({row['failed']})" for row in rows if row.get("failed")]
    if failed:
        lines.append("failed stages: " + ", ".join(failed))
    for label, numerator, denominator, above_one in RATIOS:
        pairs = ratios(rows, numerator, denominator)
        if not pairs:
            lines.append(f"{label}: no rows with both figures")
            continue
        values = [value for _, value in pairs]
        line = (f"{label}: {min(values):.2f}-{max(values):.2f}x, median {statistics.median(values):.2f} "
                f"({len(pairs)} models)")
        above = [f"{model} {value:.2f}" for model, value in pairs if value > 1]
        if above and len(above) < len(pairs):
            line += f"; {above_one}: " + ", ".join(above)
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=os.path.join(REPO, "docs", "results", "benchmarks.csv"), help="zoo_speed.py's CSV")
    args = parser.parse_args()
    try:
        comment, rows = read_table(args.csv)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    print(summary(comment, rows))


if __name__ == "__main__":
    main()
