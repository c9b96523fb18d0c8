"""Training's transforms held against independent numpy transcriptions of the reference (pycls).

Eval: pycls/datasets/transforms.py `scale_and_center_crop` with OpenCV's INTER_LINEAR (half-pixel
centres, no antialiasing) written out in numpy; lighting: `lighting` (AlexNet PCA noise); flip:
`horizontal_flip` with p = 0.5. A squashed eval crop, a rounded (not truncated) long side, a
floor (not ceil) offset, a transposed eigenvector matrix or a biased flip each fail here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_regnet.pretrained.eval_crop import decode_and_center_crop, scale_and_center_crop
from training.data import augment

EIG_VALS = [0.2175, 0.0188, 0.0045]  # pycls/datasets/imagenet.py _EIG_VALS / _EIG_VECS
EIG_VECS = [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]


def _cv2_linear_resize(im: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """cv2.resize(..., INTER_LINEAR) on a float image: half-pixel centres, edge-clamped taps."""
    def taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        lo = np.floor(src)
        frac = src - lo
        frac[src < 0] = 0.0
        lo = np.clip(lo, 0, n_in - 1).astype(int)
        hi = np.clip(lo + 1, 0, n_in - 1)
        return lo, hi, frac

    y0, y1, fy = taps(im.shape[0], out_h)
    x0, x1, fx = taps(im.shape[1], out_w)
    rows = im[y0] * (1 - fy)[:, None, None] + im[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def _pycls_scale_and_center_crop(im: np.ndarray, scale_size: int, crop_size: int) -> np.ndarray:
    """pycls/datasets/transforms.py `scale_and_center_crop`, transcribed."""
    h, w = im.shape[:2]
    if w < h and w != scale_size:
        w, h = scale_size, int(h / w * scale_size)
        im = _cv2_linear_resize(im, h, w)
    elif h <= w and h != scale_size:
        w, h = int(w / h * scale_size), scale_size
        im = _cv2_linear_resize(im, h, w)
    x = math.ceil((w - crop_size) / 2)
    y = math.ceil((h - crop_size) / 2)
    return im[y: y + crop_size, x: x + crop_size, :]


@pytest.mark.parametrize("h, w, size", [(75, 100, 56), (100, 67, 56), (37, 53, 24), (64, 64, 56), (500, 375, 224)])
def test_eval_crop_is_the_reference_window_and_pixels(h, w, size):
    rng = np.random.default_rng(h * w)
    pixels = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    ours = decode_and_center_crop(tf.io.encode_png(pixels), size).numpy()
    reference = _pycls_scale_and_center_crop(pixels.astype(np.float64), round(size / 0.875), size)
    assert ours.shape == reference.shape == (size, size, 3)
    np.testing.assert_allclose(ours, reference, atol=1e-2)  # float32 sample positions in TF


def test_served_and_evaluated_pixels_are_identical():
    """The SavedModel's serve_image_bytes preprocessing and training's eval path: same JPEG, same input."""
    from tflite import saved_model

    rng = np.random.default_rng(0)
    jpegs = [tf.io.encode_jpeg(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).numpy()
             for h, w in ((61, 90), (90, 61), (48, 48))]
    trained_on = [augment.eval_image(tf.constant(j), 32).numpy() for j in jpegs]
    served = tf.map_fn(lambda b: decode_and_center_crop(b, 32), tf.constant(jpegs), fn_output_signature=tf.float32)
    np.testing.assert_array_equal(np.stack(trained_on), served.numpy())
    assert saved_model.decode_and_center_crop is decode_and_center_crop  # the signature's function


def test_lighting_offsets_have_the_reference_distribution():
    seeds = tf.stack([tf.range(6000, dtype=tf.int64), tf.fill([6000], tf.constant(5, tf.int64))], axis=1)
    ours = tf.map_fn(augment.lighting_offset, seeds, fn_output_signature=tf.float32).numpy()
    rng = np.random.RandomState(0)
    reference = []
    for _ in range(6000):  # pycls `lighting` on a one-pixel image, scaled to 0-255
        alpha = np.repeat(rng.normal(0, 0.1, size=(1, 3)), 3, axis=0)
        eig_val = np.repeat(np.array([EIG_VALS]), 3, axis=0)
        reference.append(255.0 * np.sum(np.array(EIG_VECS) * alpha * eig_val, axis=1))
    reference = np.array(reference)
    mean_abs, ref_mean_abs = np.abs(ours).mean(axis=0), np.abs(reference).mean(axis=0)
    np.testing.assert_allclose(mean_abs, ref_mean_abs, rtol=0.1)
    assert 2.0 < mean_abs.mean() < 3.5  # ~4.4 units of std per channel -> mean |offset| ~ 3.5 x 0.8
    cov, ref_cov = np.cov(ours.T), np.cov(reference.T)
    np.testing.assert_allclose(cov, ref_cov, atol=0.1 * np.abs(ref_cov).max())


def test_flip_happens_for_half_of_the_seeds_and_keeps_the_image_otherwise():
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (48, 1))
    image = tf.io.encode_png(np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8))
    seeds = tf.data.Dataset.range(600).map(lambda i: tf.stack([i, tf.constant(11, tf.int64)]))
    images = np.concatenate([b.numpy() for b in seeds.map(lambda s: augment.train_image(image, s, 16)).batch(200)])
    slope = images[:, :, -1, 0].mean(axis=1) - images[:, :, 0, 0].mean(axis=1)  # right minus left
    assert np.all(np.abs(slope) > 1.0)  # every crop keeps a visible left-right ramp, mirrored or not
    flipped = float(np.mean(slope < 0))
    assert abs(flipped - 0.5) < 0.065, flipped  # 600 fair coin tosses: 3.2 standard deviations
