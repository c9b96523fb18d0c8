"""Peak memory and time of the ONNX export: tf2onnx as it comes vs inside `tflite.tf2onnx_memory.bounded_memory`.

    PYTHONPATH=. python benchmarks/onnx_export_memory.py [--models=regnetx_1.6gf,regnety_800mf]

Each (model, mode) converts the BN-folded zoo model (seeded random weights, 224x224) in its own fresh process,
so the peak resident memory (ru_maxrss) is the conversion's own:
  plain     tf2onnx.convert.from_function as it comes (a deep copy of the graph before each optimizer
            pass, and one more copy of the weights left in the node protos' arenas after each pass)
  bounded   what `tflite.onnx_export.convert` does: `bounded_memory()` around the same call
The two ONNX files are run with ONNX Runtime on the same image; their logits must agree. Plain mode on
RegNetX-8.0GF peaks near 17 GiB, so large models in plain mode need a large machine. The last line
prints the ratios plain / bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["regnetx_1.6gf", "regnety_800mf"], "Zoo models.")
flags.DEFINE_integer("image_size", 224, "Input size.")
flags.DEFINE_string("child", "", "Internal: 'mode,model,output_dir' converts once and writes a JSON line.")

MODES = ("plain", "bounded")


def convert_once(mode: str, name: str, out_dir: str) -> dict[str, float]:
    """Convert one model in this process; return seconds, peak GiB and the logits on a fixed image."""
    import keras
    import tf2onnx

    from keras_regnet import build, resolve_spec
    from tflite import onnx_export
    from tflite.fold_bn import fold_batch_norm
    from tflite.tf2onnx_memory import bounded_memory

    keras.utils.set_random_seed(0)  # both modes convert the same weights, so their logits can be compared
    model = fold_batch_norm(build(resolve_spec(name, label="--models"), input_shape=(None, None, 3), classes=1000,
                                  classifier_activation=None))
    fn = onnx_export.serving_function(model, FLAGS.image_size)
    t0 = time.perf_counter()
    with bounded_memory() if mode == "bounded" else contextlib.nullcontext():
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=onnx_export.OPSET)
    seconds = time.perf_counter() - t0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    path = os.path.join(out_dir, f"{mode}.onnx")
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    image = np.random.default_rng(0).uniform(0, 255, (1, FLAGS.image_size, FLAGS.image_size, 3)).astype(np.float32)
    logits = onnx_export.predict(path, image, threads=2)["logits"][0]
    return {"seconds": seconds, "peak_gib": peak_gib, "mib": os.path.getsize(path) / 2**20,
            "logits": logits.tolist()}


def run_child(mode: str, name: str, out_dir: str) -> dict[str, float] | None:
    """One conversion in a fresh process; None when it dies (e.g. killed for memory)."""
    cmd = [sys.executable, os.path.abspath(__file__), f"--child={mode},{name},{out_dir}",
           f"--image_size={FLAGS.image_size}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"{name} {mode}: exit {result.returncode} {result.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(lines[-1])


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.child:
        mode, name, out_dir = FLAGS.child.split(",")
        print(json.dumps(convert_once(mode, name, out_dir)), flush=True)
        return
    ratios = []
    for name in FLAGS.models:
        with tempfile.TemporaryDirectory() as out_dir:
            got = {mode: run_child(mode, name, out_dir) for mode in MODES}
        for mode, row in got.items():
            if row:
                print(f"{name} {mode:8s} peak {row['peak_gib']:.2f} GiB  {row['seconds']:.1f} s  "
                      f"onnx {row['mib']:.0f} MiB", flush=True)
        if all(got.values()):
            plain, bounded = got["plain"], got["bounded"]
            diff = float(np.max(np.abs(np.subtract(plain["logits"], bounded["logits"]))))
            ratios.append(f"{name}: memory {plain['peak_gib'] / bounded['peak_gib']:.1f}x, "
                          f"time {plain['seconds'] / bounded['seconds']:.1f}x, max |logit diff| {diff:.1e}")
    print("plain / bounded: " + "; ".join(ratios))


if __name__ == "__main__":
    app.run(main)
