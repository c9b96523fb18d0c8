"""Train-step images/s of RegNetY-600MF on CPU: the pipeline's custom loop vs plain `model.fit`.

Both train the same model (same spec, init, data and recipe: SGD Nesterov 0.9, warmup-cosine LR,
coupled L2 5e-5 for ours; SGD Nesterov for fit) on the same in-memory batches, alternating rounds
side by side so a busy machine slows both alike; the best round of each is kept. Ours is the
training.engines.tensorflow.trainer step with the pipeline's defaults (one device, XLA auto = off on CPU, float32).
The last line prints the ratio (bar: >= 1.0x).

    python benchmarks/train_loop.py [--image_size 224] [--batch_size 16] [--steps 5]

With --loop it measures instead the TensorFlow engine's trainer loop (training.core.loop: lagged metrics
read, NaN/state checks, host LR, progress, TensorBoard and checkpoint cadence) against its bare
distributed step on the same in-memory batch, alternating rounds, and prints as its last line
`loop/step <model> = R` (the loop's img/s over the bare step's; benchmarks/gpu_step.py --loop is the JAX
engine's twin):

    python benchmarks/train_loop.py --loop --model regnety_digits --image_size 32 --batch_size 12 --steps 30
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's packages

from absl import app, flags  # noqa: E402

flags.DEFINE_string("model", "regnety_600mf", "Zoo model.")
flags.DEFINE_integer("image_size", 224, "Input resolution.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("steps", 5, "Timed steps per round (after one warm-up step).")
flags.DEFINE_integer("rounds", 2, "Alternating rounds per variant.")
flags.DEFINE_bool("loop", False, "Measure the trainer loop against its bare step (prints loop/step last).")
flags.DEFINE_integer("warmup", 5, "With --loop: untimed steps before each timed round.")
FLAGS = flags.FLAGS


class _ResidentFeed:
    """What the TensorFlow engine's Feed offers the trainer, serving one in-memory batch (input not measured)."""

    eval_steps = 0

    def __init__(self, strategy, images, labels, classes: int, steps_per_epoch: int) -> None:
        import tensorflow as tf

        self.source = type("Source", (), {"name": "synthetic", "num_classes": classes, "num_train": 0,
                                          "num_eval": 0, "data_service": None})()
        self.global_batch, self.steps_per_epoch = int(labels.shape[0]), steps_per_epoch
        self._strategy, self._data = strategy, tf.data.Dataset.from_tensors((images, labels))

    def train(self, epoch: int, start: int, count: int):
        return iter(self._strategy.experimental_distribute_dataset(self._data.repeat(count)))

    def eval(self):
        return iter(())


def measure_loop() -> None:
    """loop/step for the TensorFlow engine: its trainer's epoch loop vs its bare step, same model and batch."""
    import tempfile

    import keras
    import tensorflow as tf

    from keras_regnet import resolve_spec
    from training.core.config import TrainConfig
    from training.engines.tensorflow.assembly import build_parts
    from training.engines.tensorflow.devices import make_runtime
    from training.engines.tensorflow.trainer import TensorFlowTrainer
    from training.run import prepare

    size, batch, n, warmup, rounds = FLAGS.image_size, FLAGS.batch_size, FLAGS.steps, FLAGS.warmup, FLAGS.rounds
    runtime = make_runtime("one_device", "off", "off")
    images = tf.random.uniform([batch, size, size, 3], 0, 255, seed=0)
    labels = tf.random.uniform([batch], 0, 10, dtype=tf.int32, seed=1)
    feed = _ResidentFeed(runtime.strategy, images, labels, 10, steps_per_epoch=rounds * (warmup + n))
    resolve_spec(FLAGS.model, label="--model")
    with tempfile.TemporaryDirectory() as model_dir:
        cfg, spec, _ = prepare(TrainConfig(model=FLAGS.model, image_size=size, batch_size=batch, epochs=1,
                                           model_dir=model_dir, verbose=2, precise_bn_images=0))
        keras.utils.set_random_seed(0)
        trainer = TensorFlowTrainer(cfg, runtime, build_parts(cfg, runtime, feed, spec))
        trainer.restore_or_start()

        def bare() -> float:
            iterator = feed.train(0, 0, warmup + n)
            for _ in range(warmup):
                trainer.distributed_train_step(iterator)
            tf.nest.flatten(trainer.distributed_train_step(iterator))[0].numpy()  # the warm-up finished
            t0 = time.perf_counter()
            for _ in range(n - 1):
                outputs = trainer.distributed_train_step(iterator)
            tf.nest.flatten(outputs)[0].numpy()
            return (time.perf_counter() - t0) / (n - 1)

        def loop() -> float:
            trainer._train_epoch(0, trainer.current_step(), warmup, _Silent())
            t0 = time.perf_counter()
            trainer._train_epoch(0, trainer.current_step(), n, _Silent())
            return (time.perf_counter() - t0) / n

        bare_s, loop_s = [], []
        for _ in range(rounds):
            bare_s.append(bare())
            loop_s.append(loop())
    print(f"{FLAGS.model} {size}x{size} batch {batch}, CPU ({os.cpu_count()} cores), {n} timed steps after {warmup}")
    print(f"rounds (ms/step): bare {', '.join(f'{1e3 * t:.2f}' for t in bare_s)}; "
          f"loop {', '.join(f'{1e3 * t:.2f}' for t in loop_s)}")
    print(f"bare step {batch / min(bare_s):.1f} img/s, trainer loop {batch / min(loop_s):.1f} img/s")
    print(f"loop/step {FLAGS.model} = {min(bare_s) / min(loop_s):.3f}")


class _Silent:
    """The loop's TensorBoard writer with no log directory."""

    def write(self, *args, **kwargs) -> None:
        pass


def main(argv: list[str]) -> None:
    if FLAGS.loop:
        measure_loop()
        return
    import keras
    import tensorflow as tf

    from keras_regnet import resolve_spec
    from training.core.models import build_model
    from training.core.recipe import WarmupCosine, make_optimizer
    from training.engines.tensorflow import step as train_steps

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
