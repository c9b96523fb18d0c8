"""Input pipeline images/s: train augmentation decoding only the crop vs full decode then crop.

Both variants run `training.data.augment.train_image` (random crop, flip, resize to 224, PCA
lighting) in the same tf.data pipeline over the same in-memory JPEGs of ImageNet size; only the
decode + crop stage differs. That stage is also timed alone (same windows, nothing after it): its
ratio bounds what the whole augmentation can gain. Variants run side by side and alternating, so
a busy machine slows both alike; the best round of each is kept, and the median over rounds of
the ratio within each back-to-back pair is printed too (less swayed by one quiet moment).
`--parallel=0` (default) maps without num_parallel_calls (tf.data's map_parallelization may still
use a second core). Besides wall-clock images/s, the process CPU time per image is reported: it
is less sensitive to other processes sharing the machine. The last line prints the ratios (bar:
>= 1.3x, wall clock).

    python benchmarks/input_pipeline.py [--images 256] [--rounds 5]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("images", 256, "Images per measurement.")
flags.DEFINE_integer("rounds", 5, "Alternating measurement rounds per variant.")
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


def images_per_second(jpegs: list[bytes], crop_fn, count: int, size: int, batch: int,
                      stage_only: bool = False) -> tuple[float, float]:
    """(wall-clock images/s, process CPU ms per image) of the train augmentation using `crop_fn`.

    `stage_only` times just the decode + crop stage: one pixel of each crop is kept, so batching
    costs nothing and only the decode differs.
    """
    import tensorflow as tf

    from training.data import augment

    def fn(i: tf.Tensor, data: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([tf.constant(0, tf.int64), i])
        if stage_only:
            return crop_fn(data, tf.random.experimental.stateless_split(seed, 3)[0])[0, 0]
        return augment.train_image(data, seed, size, decode_crop=crop_fn)

    ds = tf.data.Dataset.from_tensor_slices(jpegs).repeat().take(count + batch)
    ds = tf.data.Dataset.zip((tf.data.Dataset.range(count + batch), ds))
    calls = tf.data.AUTOTUNE if FLAGS.parallel else None
    ds = ds.map(fn, num_parallel_calls=calls).batch(batch).prefetch(tf.data.AUTOTUNE)
    it = iter(ds)
    next(it)  # warm-up batch (tracing, thread pools)
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for b in it:
        n += int(b.shape[0])
    return n / (time.perf_counter() - t0), 1e3 * (time.process_time() - c0) / n


def main(argv: list[str]) -> None:
    from training.data import augment

    jpegs = make_jpegs(64)
    fast, slow, stage_fast, stage_slow = [], [], [], []
    args = (FLAGS.images, FLAGS.image_size, FLAGS.batch_size)
    for _ in range(FLAGS.rounds):
        fast.append(images_per_second(jpegs, augment.decode_and_random_crop, *args))
        slow.append(images_per_second(jpegs, augment.decode_then_random_crop, *args))
        stage_fast.append(images_per_second(jpegs, augment.decode_and_random_crop, *args, stage_only=True))
        stage_slow.append(images_per_second(jpegs, augment.decode_then_random_crop, *args, stage_only=True))
    f, s = max(r[0] for r in fast), max(r[0] for r in slow)
    fc, sc = min(r[1] for r in fast), min(r[1] for r in slow)
    for name, runs, best, cpu in (("decode_and_crop_jpeg (pipeline default)", fast, f, fc),
                                  ("full decode then crop (peer)           ", slow, s, sc)):
        print(f"{name}: {best:.1f} images/s, {cpu:.3f} CPU ms/image  (rounds: "
              f"{', '.join(f'{w:.0f}/s {c:.2f}ms' for w, c in runs)})")
    stage = max(r[0] for r in stage_fast) / max(r[0] for r in stage_slow)
    stage_cpu = min(r[1] for r in stage_slow) / min(r[1] for r in stage_fast)
    print(f"decode + crop stage alone: {min(r[1] for r in stage_fast):.3f} vs "
          f"{min(r[1] for r in stage_slow):.3f} CPU ms/image (the bound on the whole augmentation's ratio)")
    paired = sorted(a[0] / b[0] for a, b in zip(fast, slow))  # each round's back-to-back pair
    print(f"ratio decode_and_crop / full_decode = {f / s:.2f}x wall clock (median of the rounds' "
          f"pairs {paired[len(paired) // 2]:.2f}x), {sc / fc:.2f}x CPU time (bar >= 1.3x); "
          f"decode + crop stage alone {stage:.2f}x wall clock, {stage_cpu:.2f}x CPU time")


if __name__ == "__main__":
    app.run(main)
