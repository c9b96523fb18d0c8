"""Input pipeline speed per core: our train stream against today's (commit 60f621e) and the reference's.

The peer is the reference's train transform as its data loader runs it (pycls/datasets/imagenet.py
and transforms.py: full OpenCV decode, random-sized crop, INTER_LINEAR resize to 224, flip, PCA
lighting, per-channel normalization), written here with OpenCV (`pip install
opencv-python-headless`; PIL if OpenCV is missing) and run in one Python thread, as one
DataLoader worker does. Ours is `training.data.augment.train_image` (decode only the crop, same
crop law) in tf.data. Both are charged the process CPU time per image, which is the per-core cost
and less swayed by other jobs on the machine than wall clock; the bar is ours >= 1.0x the
reference's images per CPU-second.

The train stream as the trainer runs it (`pipeline.train_dataset`: parallel map, corrupt-image
path, batching) is measured against today's (the same transform behind `robust_map`, three small
datasets per record, which main used for training until #22) on the same JPEGs and seeds; the
mean PSNR of `--psnr_images` augmented images against today's says whether pixels changed, and
the share of crops that a reduced DCT scale could decode (crop >= 2x the output on both sides) is
printed for these 500x375 images. Also printed, as before: decode_and_crop_jpeg against a full
decode then crop (one thread, transform alone), and the decode + crop stage alone. Streams are
charged their marginal CPU time (a full stream minus a two-batch one). The candidate levers and
the decode ceilings of `benchmarks/input_levers.py` run in the same rounds, each printed as
today's CPU per image over its own (what it would give; a ceiling bounds any lever that keeps
its work). Variants alternate over rounds so a busy machine slows all of them alike; the best
round of each is kept.

    python benchmarks/input_pipeline.py [--images 512] [--rounds 5]
    python benchmarks/input_pipeline.py --augment=randaugment,trivialaugment,augmix,erasing   # policy cost
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("images", 512, "Images per measurement.")
flags.DEFINE_integer("psnr_images", 1000, "Augmented images compared with today's pipeline.")
flags.DEFINE_integer("rounds", 5, "Alternating measurement rounds per variant.")
flags.DEFINE_integer("image_size", 224, "Output crop size.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_bool("parallel", False, "Parallel map (AUTOTUNE) instead of one thread.")
flags.DEFINE_list("augment", [], "Instead of the comparisons above: the train stream with each of these --augment "
                  "policies (randaugment, trivialaugment, augmix; 'erasing' for --random_erasing=0.25 alone) "
                  "against none, same JPEGs and rounds: images/s, CPU ms per image and the ratio.")
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


def jpeg_source(jpegs: list[bytes]):
    """A Source over the JPEGs in memory (labels 0), decoded by the train transform of ImageNet data."""
    import tensorflow as tf

    from training.data import augment
    from training.data.pipeline import Source

    def records(ctx, seed=None):
        return tf.data.Dataset.from_tensor_slices((jpegs, [0] * len(jpegs)))

    return Source("jpegs", 1, len(jpegs), 0, records, records,
                  lambda image_bytes, seed, size: augment.train_image(image_bytes, seed, size), None)


def today_images(source, count: int, size: int, deterministic: bool):
    """`count` augmented images as main's train stream made them before #22: the transform behind
    `robust_map` (three small datasets per record), seeded by position as now."""
    import tensorflow as tf

    from training.data.pipeline import robust_map

    records = source.train_records(None, 0).repeat().take(count)
    ds = tf.data.Dataset.zip((tf.data.Dataset.range(count), records))

    def augment(position, record):
        seed = tf.stack([tf.constant(0, tf.int64), position])
        return source.train_map(record[0], seed, size), tf.cast(record[1], tf.int64)

    return robust_map(ds, augment, size, deterministic=deterministic)


def today_stream(source, batch: int, num_batches: int, size: int):
    """The train stream as main ran it before #22 (the peer), batched and prefetched."""
    import tensorflow as tf

    ds = today_images(source, num_batches * batch, size, deterministic=False)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def our_stream(source, batch: int, num_batches: int, size: int, deterministic: bool = False):
    """The train stream the trainer runs now: `pipeline.train_dataset` (epoch 0, seed 0)."""
    from training.data.pipeline import train_dataset

    return train_dataset(source, None, batch, 0, 0, num_batches, size, 0, deterministic=deterministic)


def _consume(ds) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, images) to iterate a batched stream to its end."""
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    for images, _ in ds:
        n += int(images.shape[0])
    return time.perf_counter() - t0, time.process_time() - c0, n


def stream_cost(build, num_batches: int) -> tuple[float, float]:
    """(wall images/s, process CPU ms per image) of `build(num_batches)` beyond `build(2)`.

    The marginal cost of the extra batches: start-up cancels, and so does the work a pipeline
    buffers ahead (timing after a warm-up batch leaves that work unpaid, which flatters streams
    that run far ahead: a parallel interleave measured below its own decode stage alone). A first,
    untimed short stream pays the one-time costs (kernels, thread pools) so neither run does.
    """
    _consume(build(2))
    _, short_cpu, short_n = _consume(build(2))
    wall, cpu, n = _consume(build(num_batches))
    return n / wall, 1e3 * (cpu - short_cpu) / (n - short_n)


def mean_psnr(ours, today, batch: int = 50) -> tuple[float, float]:
    """(mean PSNR in dB, max abs difference) of the batched stream `ours` against `today`'s images."""
    psnrs, worst = [], 0.0
    for (a, _), (b, _) in zip(ours, today.batch(batch)):
        mse = np.mean((a.numpy().astype(np.float64) - b.numpy()) ** 2, axis=(1, 2, 3))
        psnrs.extend(10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)))
        worst = max(worst, float(np.abs(a.numpy() - b.numpy()).max()))
    return float(np.mean(psnrs)), worst


def reduced_dct_share(height: int, width: int, size: int, samples: int = 10_000) -> float:
    """Share of pycls crops of an height x width image at least 2 x size on both sides."""
    import tensorflow as tf

    from training.data.crop import DRAWS_PER_TRY, MAX_TRIES, pycls_window_from_uniforms

    u = tf.random.stateless_uniform([samples, MAX_TRIES, DRAWS_PER_TRY], [0, 1])
    windows = pycls_window_from_uniforms(tf.constant(height), tf.constant(width), u).numpy()
    return float(np.mean((windows[:, 2] >= 2 * size) & (windows[:, 3] >= 2 * size)))


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
    from benchmarks import input_levers
    from training.data import augment

    jpegs = make_jpegs(64)
    source = jpeg_source(jpegs)
    size, batch = FLAGS.image_size, FLAGS.batch_size
    num_batches = FLAGS.images // batch + 1
    if FLAGS.augment:
        return _print_policy_costs(source, FLAGS.augment, batch, num_batches, size)
    fast, slow, stage_fast, stage_slow, reference, today, ours = [], [], [], [], [], [], []
    variants = {**input_levers.LEVERS, **input_levers.CEILINGS}
    variant_costs = {name: [] for name in variants}
    args = (FLAGS.images, size, batch)
    for _ in range(FLAGS.rounds):
        reference.append(reference_images_per_second(jpegs, FLAGS.images, size))
        today.append(stream_cost(lambda n: today_stream(source, batch, n, size), num_batches))
        ours.append(stream_cost(lambda n: our_stream(source, batch, n, size), num_batches))
        for name, build in variants.items():
            variant_costs[name].append(stream_cost(lambda n, b=build: b(source, batch, n, size), num_batches))
        fast.append(images_per_second(jpegs, augment.decode_and_random_crop, *args))
        slow.append(images_per_second(jpegs, augment.decode_then_random_crop, *args))
        stage_fast.append(images_per_second(jpegs, augment.decode_and_random_crop, *args, stage_only=True))
        stage_slow.append(images_per_second(jpegs, augment.decode_then_random_crop, *args, stage_only=True))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    _print_stream_lines(today, ours, reference)
    _print_variant_lines(today, variant_costs, input_levers.CEILINGS)
    count = FLAGS.psnr_images
    reference_images = today_images(source, count, size, deterministic=True)
    for name, build in (("now", lambda: our_stream(source, 50, count // 50, size, deterministic=True)),
                        ("a+b uint8", lambda: input_levers.uint8_between_stages(source, 50, count // 50, size, True))):
        psnr, worst = mean_psnr(build(), reference_images)
        verdict = "identical pixels" if worst == 0 else f"{psnr:.1f} dB"
        print(f"pixels ({name}): mean PSNR of {count} augmented images against today's pipeline, same seeds: "
              f"{verdict} (max abs difference {worst:.4f}; bar >= 35 dB)")
    print(f"reduced DCT scale (crop >= {2 * size}px on both sides): {100 * reduced_dct_share(375, 500, size):.1f}% "
          f"of crops of a 500x375 image, {100 * reduced_dct_share(750, 1000, size):.1f}% of a 1000x750 one")
    _print_decode_lines(fast, slow, stage_fast, stage_slow)


def _print_policy_costs(source, names: list[str], batch: int, num_batches: int, size: int) -> None:
    """The train stream with each --augment policy (or erasing alone) against none, alternating per round."""
    import dataclasses

    from training.data.policies import PolicyConfig, with_policy

    configs = {"none": PolicyConfig()}
    for name in names:
        configs[name] = PolicyConfig(random_erasing=0.25) if name == "erasing" else PolicyConfig(name)
    sources = {name: dataclasses.replace(source, train_map=with_policy(source.train_map, cfg))
               for name, cfg in configs.items()}
    costs = {name: [] for name in configs}
    for _ in range(FLAGS.rounds):
        for name, src in sources.items():
            costs[name].append(stream_cost(lambda n, s=src: our_stream(s, batch, n, size), num_batches))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
          f"{size}px, batch {batch}, {FLAGS.images} images x {FLAGS.rounds} rounds (best round each)")
    base = min(r[1] for r in costs["none"])
    for name, runs in costs.items():
        cpu = min(r[1] for r in runs)
        print(f"--augment {name:14s}: {max(r[0] for r in runs):6.0f} images/s, {cpu:7.3f} CPU ms/image, "
              f"{1e3 / cpu:6.0f} images per core-second; none / this = {base / cpu:.2f}x")


def _print_variant_lines(today: list, costs: dict, ceilings: dict) -> None:
    """Each lever's and ceiling's CPU ms per image, and today's / its (what it would give)."""
    tc = min(r[1] for r in today)
    for name, runs in costs.items():
        cpu = min(r[1] for r in runs)
        kind = "ceiling" if name in ceilings else "lever"
        print(f"{kind} {name}: {cpu:.3f} CPU ms/image, today's / this = {tc / cpu:.2f}x  (rounds: "
              f"{', '.join(f'{c:.2f}ms' for _, c in runs)})")


def _print_stream_lines(today: list, ours: list, reference: list) -> None:
    """The per-core lines: the trainer's stream now and before #22, and the OpenCV reference."""
    tc, oc, rc = (min(r[1] for r in runs) for runs in (today, ours, reference))
    for name, runs, cpu in (("train stream now (pipeline.train_dataset)        ", ours, oc),
                            ("train stream before #22 (robust_map, the peer)   ", today, tc)):
        print(f"{name}: {max(r[0] for r in runs):.0f} images/s, {cpu:.3f} CPU ms/image  (rounds: "
              f"{', '.join(f'{c:.2f}ms' for _, c in runs)})")
    paired = sorted(b[1] / a[1] for a, b in zip(ours, today))
    print(f"ratio now / before #22 = {tc / oc:.2f}x images per CPU-second (median of the rounds' pairs "
          f"{paired[len(paired) // 2]:.2f}x; bar >= 1.5x): {1e3 / oc:.0f} vs {1e3 / tc:.0f} per core-second")
    print(f"reference train transform ({reference[0][2]}, one thread): {1e3 / rc:.0f} per core-second, "
          f"{rc:.3f} CPU ms/image; ratio train stream now / reference = {rc / oc:.2f}x")


def _print_decode_lines(fast: list, slow: list, stage_fast: list, stage_slow: list) -> None:
    """The transform alone in one thread: decode_and_crop_jpeg against a full decode, and the stage alone."""
    fc, sc = min(r[1] for r in fast), min(r[1] for r in slow)
    for name, runs, cpu in (("transform alone, decode_and_crop_jpeg (default)", fast, fc),
                            ("transform alone, full decode then crop         ", slow, sc)):
        print(f"{name}: {max(r[0] for r in runs):.0f} images/s, {cpu:.3f} CPU ms/image")
    print(f"decode + crop stage alone: {min(r[1] for r in stage_fast):.3f} vs "
          f"{min(r[1] for r in stage_slow):.3f} CPU ms/image; whole transform {sc / fc:.2f}x CPU time")


if __name__ == "__main__":
    app.run(main)
