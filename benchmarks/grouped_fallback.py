"""Train-step time of the per-group gradient (oneDNN off) against TensorFlow's oneDNN grouped gradient.

    python benchmarks/grouped_fallback.py [--model regnety_600mf] [--batch 16] [--size 224] [--rounds 3]

oneDNN is switched at TensorFlow's import (TF_ENABLE_ONEDNN_OPTS), so each setting runs in a process
of its own: the rounds alternate on, off, on, off... on the same batch and weights. With oneDNN off,
every convolution (not only the grouped ones) runs on TensorFlow's Eigen kernels, so the oneDNN-on
process also times the per-group gradient (forced) beside the native one, alternating steps: that
ratio is the fallback's own cost. The last line prints the medians, both ratios and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {"onednn_on": "1", "onednn_off": "0"}


def measure(args: argparse.Namespace) -> dict:
    """In this process: median seconds of a float32 train step (SGD, cross-entropy) per grouped gradient.

    With oneDNN on, the per-group gradient is also traced (forced) beside the native one and the two
    steps alternate, so their ratio is free of the load's drift between processes.
    """
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import keras
    import numpy as np
    from train_step import keras3_step_fns

    import keras_regnet
    from keras_regnet import grouped_gradient

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 1000, args.batch).astype("int32")
    original = grouped_gradient.has_native_gradient
    steps = {}
    for kernel in ("native", "per-group") if original("float32") else ("per-group",):
        keras.utils.set_random_seed(0)
        model = keras_regnet.build(keras_regnet.resolve_spec(args.model, label="--model"), input_shape=(args.size, args.size, 3))
        train, _ = keras3_step_fns(model, x, y)
        if kernel == "per-group":  # the kernel is chosen while tracing: force it there
            grouped_gradient.has_native_gradient = lambda dtype: False
        try:
            train()  # warm-up: tracing
        finally:
            grouped_gradient.has_native_gradient = original
        steps[kernel] = train
    times: dict[str, list[float]] = {kernel: [] for kernel in steps}
    for _ in range(args.steps):
        for kernel, train in steps.items():
            start = time.perf_counter()
            train()
            times[kernel].append(time.perf_counter() - start)
    return {kernel: statistics.median(values) for kernel, values in times.items()}


def run_child(args: argparse.Namespace, setting: str) -> dict:
    """One measurement in a fresh process with oneDNN on or off."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": SETTINGS[setting], "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, os.path.abspath(__file__), "--child", "--model", args.model,
               "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnety_600mf")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per kernel and process (after a warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting, alternating")
    parser.add_argument("--child", action="store_true", help="internal: measure in this process, print JSON")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {"onednn_on native": [], "onednn_on per-group": [], "onednn_off per-group": []}
    for round_index in range(args.rounds):
        for setting in SETTINGS:
            for kernel, seconds in run_child(args, setting).items():
                times[f"{setting} {kernel}"].append(seconds)
                print(f"round {round_index + 1} {setting:10s} {kernel:9s} grouped gradient: train step {seconds:.3f} s "
                      f"({args.model}, batch {args.batch}, {args.size}px)", flush=True)
    on, forced, off = times.values()
    same_process = statistics.median(f / n for f, n in zip(forced, on))
    print(f"median train step: oneDNN on {statistics.median(on):.3f} s (native), oneDNN off "
          f"{statistics.median(off):.3f} s (per-group): off/on {statistics.median(off) / statistics.median(on):.2f}x; "
          f"oneDNN on, same process: per-group/native {same_process:.2f}x "
          f"(load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
