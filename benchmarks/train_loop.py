"""Train-step images/s of RegNetY-600MF on CPU: the pipeline's custom loop vs plain `model.fit`.

Both train the same model (same spec, init, data and recipe: SGD Nesterov 0.9, warmup-cosine LR,
coupled L2 5e-5 for ours; SGD Nesterov for fit) on the same in-memory batches, alternating rounds
side by side so a busy machine slows both alike; the best round of each is kept. Ours is the
training.engines.tensorflow.trainer step with the pipeline's defaults (one device, XLA auto = off on CPU, float32).
The last line prints the ratio (bar: >= 1.0x).

    python benchmarks/train_loop.py [--image_size 224] [--batch_size 16] [--steps 5]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model", "regnety_600mf", "Zoo model.")
flags.DEFINE_integer("image_size", 224, "Input resolution.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("steps", 5, "Timed steps per round (after one warm-up step).")
flags.DEFINE_integer("rounds", 2, "Alternating rounds per variant.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    import keras
    import tensorflow as tf

    from training.engines.tensorflow import step as train_steps
    from keras_regnet import resolve_spec
    from training.core.models import build_model
    from training.core.recipe import WarmupCosine, make_optimizer

    spec = resolve_spec(FLAGS.model, label="--model")
    size, batch, n = FLAGS.image_size, FLAGS.batch_size, FLAGS.steps
    images = tf.random.uniform([batch, size, size, 3], 0, 255, seed=0)
    labels = tf.random.uniform([batch], 0, 1000, dtype=tf.int64, seed=1)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()

    keras.utils.set_random_seed(0)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        ours = build_model(spec, size, 1000)
        opt = make_optimizer(WarmupCosine(0.1, 1000, 50))
        opt.build(ours.trainable_variables)
    step = train_steps.distributed(strategy, train_steps.make_train_step(
        ours, opt, batch, 1000, 5e-5, 0.0, xla=False))
    iterator = iter(strategy.experimental_distribute_dataset(data))

    keras.utils.set_random_seed(0)
    peer = build_model(spec, size, 1000)
    peer.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def time_ours() -> float:
        step(iterator)
        t0 = time.perf_counter()
        for _ in range(n):
            float(step(iterator).loss_sum)
        return n * batch / (time.perf_counter() - t0)

    def time_fit() -> float:
        peer.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
        t0 = time.perf_counter()
        peer.fit(data, steps_per_epoch=n, epochs=1, verbose=0)
        return n * batch / (time.perf_counter() - t0)

    a, b = [], []
    for _ in range(FLAGS.rounds):
        a.append(time_ours())
        b.append(time_fit())
    print(f"{FLAGS.model} {size}x{size} batch {batch}, CPU ({os.cpu_count()} cores)")
    print(f"training loop (pipeline defaults): {max(a):.2f} images/s  (rounds: {', '.join(f'{v:.2f}' for v in a)})")
    print(f"keras model.fit (peer):            {max(b):.2f} images/s  (rounds: {', '.join(f'{v:.2f}' for v in b)})")
    print(f"ratio training_loop / model.fit = {max(a) / max(b):.2f}x (bar >= 1.0x)")


if __name__ == "__main__":
    app.run(main)
