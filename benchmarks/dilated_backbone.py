"""CPU inference time of a dilated backbone: output_stride 16 and 8 beside the plain stride 32.

    python benchmarks/dilated_backbone.py [--model regnety_600mf] [--size 512] [--runs 5] [--batch 1]

Builds the model without its classifier (`include_top=False`, random weights) at each output stride,
traces one `tf.function` forward pass per model, then times the three in turn (interleaved, so drift of
a shared machine spreads over all of them) and prints the median milliseconds, the analytic
multiply-adds (`keras_regnet.complexity(..., output_stride=...)`) and, last, the ratios to stride 32.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUTPUT_STRIDES = (32, 16, 8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnety_600mf")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    import keras_regnet

    spec = keras_regnet.resolve_spec(args.model)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (args.batch, args.size, args.size, 3)), tf.float32)
    forwards = {}
    for stride in OUTPUT_STRIDES:
        model = keras_regnet.build(spec, include_top=False, input_shape=(args.size, args.size, 3), output_stride=stride)
        forwards[stride] = tf.function(lambda x, m=model: m(x, training=False))
        forwards[stride](images)  # trace and warm up
    times = {stride: [] for stride in OUTPUT_STRIDES}
    for _ in range(args.runs):
        for stride, forward in forwards.items():
            start = time.perf_counter()
            forward(images).numpy()
            times[stride].append(time.perf_counter() - start)
    print(f"{spec.name} at {args.size}x{args.size}, batch {args.batch}, {args.runs} interleaved runs, "
          f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    median = {stride: float(np.median(t)) * 1e3 for stride, t in times.items()}
    for stride in OUTPUT_STRIDES:
        flops = keras_regnet.complexity(spec, args.size, include_top=False, output_stride=stride).flops
        print(f"output_stride={stride:2d}: {median[stride]:8.1f} ms (median; min {min(times[stride]) * 1e3:.1f}), "
              f"{flops / 1e9:.2f} G multiply-adds")
    for stride in OUTPUT_STRIDES[1:]:
        print(f"ratio output_stride={stride} / 32: {median[stride] / median[32]:.2f}x time")


if __name__ == "__main__":
    main()
