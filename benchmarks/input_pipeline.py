"""Input pipeline images/s: train augmentation decoding only the crop vs full decode then crop.

Both variants run the same tf.data pipeline (random resized crop 224, flip, PCA lighting, batch)
over the same in-memory JPEGs of ImageNet-like size, side by side and alternating, so a busy
machine slows both alike; the best round of each is kept. `--parallel=0` maps on one thread,
which measures the CPU cost per image with less noise from other processes. The last line prints
the ratio (bar: >= 1.3x).

    python benchmarks/input_pipeline.py [--images 256] [--rounds 2]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("images", 256, "Images per measurement.")
flags.DEFINE_integer("rounds", 3, "Alternating measurement rounds per variant.")
flags.DEFINE_integer("image_size", 224, "Output crop size.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_bool("parallel", False, "Parallel map (AUTOTUNE) instead of one thread.")
FLAGS = flags.FLAGS


def make_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Photo-like JPEGs (smooth colour fields + texture) at ImageNet's typical 500x375."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    for _ in range(count):
        base = np.stack([np.sin(xx / rng.uniform(20, 80) + rng.uniform(0, 6)) * 80 + 128,
                         np.cos(yy / rng.uniform(20, 80)) * 80 + 128,
                         (xx + yy) / 875 * 255], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        out.append(tf.io.encode_jpeg(pixels, quality=90).numpy())
    return out


def images_per_second(jpegs: list[bytes], crop_fn, count: int, size: int, batch: int) -> float:
    """Throughput of the full train augmentation with `crop_fn` as its decode+crop stage."""
    import tensorflow as tf

    from training.data import augment

    def fn(i: tf.Tensor, data: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([tf.constant(0, tf.int64), i])
        return augment.train_image(data, seed, size, decode_crop=crop_fn)

    ds = tf.data.Dataset.from_tensor_slices(jpegs).repeat().take(count + batch)
    ds = tf.data.Dataset.zip((tf.data.Dataset.range(count + batch), ds))
    calls = tf.data.AUTOTUNE if FLAGS.parallel else None
    ds = ds.map(fn, num_parallel_calls=calls).batch(batch).prefetch(tf.data.AUTOTUNE)
    it = iter(ds)
    next(it)  # warm-up batch (tracing, thread pools)
    t0 = time.perf_counter()
    n = 0
    for b in it:
        n += int(b.shape[0])
    return n / (time.perf_counter() - t0)


def main(argv: list[str]) -> None:
    from training.data import augment

    jpegs = make_jpegs(64)
    fast, slow = [], []
    for _ in range(FLAGS.rounds):
        fast.append(images_per_second(jpegs, augment.decode_and_random_crop, FLAGS.images,
                                      FLAGS.image_size, FLAGS.batch_size))
        slow.append(images_per_second(jpegs, augment.decode_then_random_crop, FLAGS.images,
                                      FLAGS.image_size, FLAGS.batch_size))
    f, s = max(fast), max(slow)
    print(f"decode_and_crop_jpeg (pipeline default): {f:.1f} images/s  (rounds: "
          f"{', '.join(f'{v:.1f}' for v in fast)})")
    print(f"full decode then crop (peer):            {s:.1f} images/s  (rounds: "
          f"{', '.join(f'{v:.1f}' for v in slow)})")
    print(f"ratio decode_and_crop / full_decode = {f / s:.2f}x (bar >= 1.3x)")


if __name__ == "__main__":
    app.run(main)
