"""Train-step and inference speed of keras_regnet vs stock Keras grouped convs vs Keras 2, side by side.

    python benchmarks/train_step.py [--model regnety_600mf] [--batch 16] [--size 224] [--steps 3]

The three networks are the same RegNet: keras_regnet (native grouped conv), the same Keras 3 graph
with every GroupedConv2D swapped for the stock `keras.layers.Conv2D(groups=...)`, and Keras 2's
`tf_keras.applications.RegNetY006` (when tf_keras is installed). All are measured in this process,
one after the other, on the same batch; the last line prints the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_regnet  # noqa: E402
from keras_regnet.layers import GroupedConv2D  # noqa: E402


def stock_clone(model: keras.Model) -> keras.Model:
    """The same network with Keras' stock grouped Conv2D in place of GroupedConv2D."""

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, GroupedConv2D):
            return keras.layers.Conv2D.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=swap)


def timed(fn, steps: int) -> float:
    """Median seconds per call after one untimed warm-up call (tracing/compilation)."""
    fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_fns(model, optimizer, loss_fn, x: np.ndarray, y: np.ndarray):
    """A compiled train step (SGD, cross-entropy) and an inference function for one model."""
    x, y = tf.constant(x), tf.constant(y)

    @tf.function
    def train():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    infer = tf.function(lambda: model(x, training=False))
    return (lambda: train().numpy()), (lambda: infer().numpy())


def keras3_step_fns(model: keras.Model, x: np.ndarray, y: np.ndarray):
    return step_fns(model, keras.optimizers.SGD(0.01, momentum=0.9),
                    keras.losses.SparseCategoricalCrossentropy(), x, y)


def tf_keras_step_fns(x: np.ndarray, y: np.ndarray):
    """The same two functions for Keras 2's tf_keras.applications.RegNetY006, or None."""
    try:
        import tf_keras
    except ImportError:
        return None
    model = tf_keras.applications.RegNetY006(weights=None)
    return step_fns(model, tf_keras.optimizers.SGD(0.01, momentum=0.9),
                    tf_keras.losses.SparseCategoricalCrossentropy(), x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnety_600mf")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3, help="timed steps for keras_regnet")
    parser.add_argument("--peer_steps", type=int, default=1,
                        help="timed steps for the (much slower) stock Keras 3 and Keras 2 peers")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 1000, args.batch).astype("int32")

    ours = keras_regnet.build(keras_regnet.resolve_spec(args.model, label="--model"), input_shape=(args.size, args.size, 3))
    runs = {"keras_regnet": keras3_step_fns(ours, x, y), "stock_keras": keras3_step_fns(stock_clone(ours), x, y)}
    if args.model == "regnety_600mf":
        k2 = tf_keras_step_fns(x, y)
        if k2 is not None:
            runs["tf_keras"] = k2
    results = {}
    for name, (train, infer) in runs.items():
        steps = args.steps if name == "keras_regnet" else args.peer_steps
        results[name] = (timed(train, steps), timed(infer, args.steps))
        print(f"{name:13s} train step {results[name][0]:8.3f} s   inference {results[name][1]:7.3f} s"
              f"   ({args.model}, batch {args.batch}, {args.size}px, {os.cpu_count()} CPUs)", flush=True)
    ours_train, ours_infer = results["keras_regnet"]
    ratios = []
    for name, (train, infer) in results.items():
        if name != "keras_regnet":
            ratios.append(f"train {train / ours_train:.1f}x faster than {name}, "
                          f"inference {infer / ours_infer:.2f}x faster than {name}")
    print("ratios: " + "; ".join(ratios))


if __name__ == "__main__":
    main()
