"""Input pipeline speed: our train augmentation against the reference's, per core, on the same JPEGs.

The peer is the reference's train transform as its data loader runs it (pycls/datasets/imagenet.py
and transforms.py: full OpenCV decode, random-sized crop, INTER_LINEAR resize to 224, flip, PCA
lighting, per-channel normalization), written here with OpenCV (`pip install
opencv-python-headless`; PIL if OpenCV is missing) and run in one Python thread, as one
DataLoader worker does. Ours is `training.data.augment.train_image` (decode only the crop, same
crop law) in tf.data. Both are charged the process CPU time per image, which is the per-core cost
and less swayed by other jobs on the machine than wall clock; the bar is ours >= 1.0x the
reference's images per CPU-second.

Also printed, as before: decode_and_crop_jpeg against a full decode then crop inside our pipeline,
for the whole augmentation and for the decode + crop stage alone (the bound on what the crop
decode can gain). Variants alternate over rounds so a busy machine slows all of them alike; the
best round of each is kept. `--parallel=0` (default) maps without num_parallel_calls.

    python benchmarks/input_pipeline.py [--images 256] [--rounds 5]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone

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


def reference_train_image(jpeg: bytes, size: int, rng: np.random.Generator, cv2) -> np.ndarray:
    """The reference's train transform of one JPEG (OpenCV), to a normalized CHW float32 array."""
    im = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
    h, w = im.shape[:2]
    for _ in range(10):
        area = rng.uniform(0.08, 1.0) * h * w
        aspect = rng.uniform(3 / 4, 4 / 3)
        cw, ch = round((area * aspect) ** 0.5), round((area / aspect) ** 0.5)
        if rng.uniform() < 0.5:
            cw, ch = ch, cw
        if ch <= h and cw <= w:
            y = int(rng.integers(0, h - ch)) if ch < h else 0
            x = int(rng.integers(0, w - cw)) if cw < w else 0
            im = cv2.resize(im[y:y + ch, x:x + cw], (size, size), interpolation=cv2.INTER_LINEAR)
            break
    else:
        side = min(h, w)
        im = cv2.resize(im[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2], (size, size))
    if rng.uniform() < 0.5:
        im = im[:, ::-1]
    eig_vecs = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
    im = im + (eig_vecs @ (rng.normal(0, 0.1, 3) * np.array([0.2175, 0.0188, 0.0045]))).astype(np.float32)
    im = (im - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return np.ascontiguousarray(im[:, :, ::-1].transpose(2, 0, 1))


class _PilAsCv2:
    """The two OpenCV calls the reference transform needs, done with PIL (when OpenCV is missing)."""

    IMREAD_COLOR, INTER_LINEAR = 1, 1

    @staticmethod
    def imdecode(buf: np.ndarray, _flag: int) -> np.ndarray:
        import io

        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(buf.tobytes())).convert("RGB"))[:, :, ::-1]

    @staticmethod
    def resize(im: np.ndarray, size: tuple[int, int], interpolation: int = 1) -> np.ndarray:
        from PIL import Image

        return np.stack([np.asarray(Image.fromarray(im[:, :, c]).resize(size, Image.BILINEAR))
                         for c in range(im.shape[2])], axis=-1)


def reference_images_per_second(jpegs: list[bytes], count: int, size: int) -> tuple[float, float, str]:
    """(wall images/s, CPU ms per image, library) of the reference transform in one Python thread."""
    try:
        import cv2

        cv2.setNumThreads(1)  # a DataLoader worker's OpenCV runs single-threaded
        library = f"OpenCV {cv2.__version__}"
    except ImportError:
        cv2, library = _PilAsCv2, "PIL"
    rng = np.random.default_rng(0)
    reference_train_image(jpegs[0], size, rng, cv2)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(count):
        reference_train_image(jpegs[i % len(jpegs)], size, rng, cv2)
    return count / (time.perf_counter() - t0), 1e3 * (time.process_time() - c0) / count, library


def main(argv: list[str]) -> None:
    from training.data import augment

    jpegs = make_jpegs(64)
    fast, slow, stage_fast, stage_slow, reference = [], [], [], [], []
    args = (FLAGS.images, FLAGS.image_size, FLAGS.batch_size)
    for _ in range(FLAGS.rounds):
        reference.append(reference_images_per_second(jpegs, FLAGS.images, FLAGS.image_size))
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
          f"pairs {paired[len(paired) // 2]:.2f}x), {sc / fc:.2f}x CPU time; "
          f"decode + crop stage alone {stage:.2f}x wall clock, {stage_cpu:.2f}x CPU time")
    rc, library = min(r[1] for r in reference), reference[0][2]
    print(f"reference train transform ({library}, one thread): {max(r[0] for r in reference):.1f} images/s, "
          f"{rc:.3f} CPU ms/image  (rounds: {', '.join(f'{r[1]:.2f}ms' for r in reference)})")
    print(f"ratio ours / reference = {rc / fc:.2f}x images per CPU-second (bar >= 1.0x): "
          f"{1e3 / fc:.0f} vs {1e3 / rc:.0f} images per core-second")


if __name__ == "__main__":
    app.run(main)
