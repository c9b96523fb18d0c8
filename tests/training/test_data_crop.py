"""The train crop sampler against a numpy transcription of the reference's `random_sized_crop`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from training.data import crop

DRAWS = 10_000
P_MIN = 1e-3  # fixed seeds: deterministic; a correct sampler passes each KS test with a wide margin


def _pycls_window(h: int, w: int, rng: np.random.RandomState, area_frac: float = 0.08,
                  max_iter: int = 10) -> tuple[int, int, int, int]:
    """pycls/datasets/transforms.py `random_sized_crop`, the window part (y, x, h, w), transcribed."""
    area = h * w
    for _ in range(max_iter):
        target_area = rng.uniform(area_frac, 1.0) * area
        aspect_ratio = rng.uniform(3.0 / 4.0, 4.0 / 3.0)
        w_crop = round(math.sqrt(target_area * aspect_ratio))
        h_crop = round(math.sqrt(target_area / aspect_ratio))
        if rng.uniform() < 0.5:
            w_crop, h_crop = h_crop, w_crop
        if h_crop <= h and w_crop <= w:
            y = 0 if h_crop == h else rng.randint(0, h - h_crop)
            x = 0 if w_crop == w else rng.randint(0, w - w_crop)
            return y, x, h_crop, w_crop
    return -1, -1, -1, -1  # the reference falls back to scale + centre crop


def _stats(windows: np.ndarray, h: int, w: int) -> dict[str, np.ndarray]:
    fits = windows[:, 0] >= 0
    win = windows[fits]
    area = win[:, 2] * win[:, 3] / (h * w)
    aspect = win[:, 3] / win[:, 2]
    q = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    return {"area_mean": area.mean(), "area_q": np.quantile(area, q), "aspect_q": np.quantile(aspect, q),
            "wide": (aspect > 1).mean(), "fallback": 1 - fits.mean(),
            "y_rel": (win[:, 0] / np.maximum(h - win[:, 2], 1)).mean()}


@pytest.mark.parametrize("h, w", [(375, 500), (500, 333)])
def test_area_and_aspect_distributions_equal_the_reference(h, w):
    rng = np.random.RandomState(0)
    reference = _stats(np.array([_pycls_window(h, w, rng) for _ in range(DRAWS)]), h, w)
    u = tf.random.stateless_uniform([DRAWS, crop.MAX_TRIES, crop.DRAWS_PER_TRY], [7, 1])
    windows = crop.pycls_window_from_uniforms(h, w, u).numpy()
    assert (windows[:, 0] >= 0).all() and (windows[:, 0] + windows[:, 2] <= h).all()
    assert (windows[:, 1] + windows[:, 3] <= w).all() and (windows[:, 2:] >= 1).all()
    ours = _stats(windows, h, w)
    assert abs(ours["area_mean"] - reference["area_mean"]) < 0.01
    np.testing.assert_allclose(ours["area_q"], reference["area_q"], atol=0.02)
    np.testing.assert_allclose(ours["aspect_q"], reference["aspect_q"], atol=0.02)
    assert abs(ours["wide"] - reference["wide"]) < 0.02
    assert abs(ours["y_rel"] - reference["y_rel"]) < 0.02
    assert reference["fallback"] < 0.001  # 10 tries almost always fit a 4:3 image
    # TF's distorted-bounding-box sampler is another law: smaller crops on average.
    seeds = tf.stack([tf.range(2000, dtype=tf.int64), tf.zeros(2000, tf.int64)], axis=1)
    shape = tf.constant([h, w, 3], tf.int32)
    tf_windows = tf.map_fn(lambda s: crop.tf_inception_window(shape, s), seeds, fn_output_signature=tf.int32)
    tf_area = _stats(tf_windows.numpy(), h, w)["area_mean"]
    assert tf_area < reference["area_mean"] - 0.04, (tf_area, reference["area_mean"])


def _reference_sizes(h: int, w: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(any try fits, h, w of the first that fits) per row of uniforms [n, tries, 5], in float64.

    The size part of pycls's `random_sized_crop` (transcribed above) driven by the given uniforms:
    area, aspect and swap from columns 0-2, the first try whose sides fit kept.
    """
    u = u.astype(np.float64)
    area = (0.08 + (1.0 - 0.08) * u[..., 0]) * h * w
    aspect = 3.0 / 4.0 + (4.0 / 3.0 - 3.0 / 4.0) * u[..., 1]
    w_crop, h_crop = np.round(np.sqrt(area * aspect)), np.round(np.sqrt(area / aspect))
    swap = u[..., 2] < 0.5
    w_crop, h_crop = np.where(swap, h_crop, w_crop), np.where(swap, w_crop, h_crop)
    fits = (h_crop <= h) & (w_crop <= w)
    rows, first = np.arange(len(u)), fits.argmax(axis=-1)
    return fits.any(axis=-1), h_crop[rows, first], w_crop[rows, first]


def _randomized_offset(offset: np.ndarray, slack: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(offset + U) / slack: exactly uniform on [0, 1) when offset is uniform on {0, .., slack - 1}."""
    return (offset + rng.uniform(size=offset.shape)) / slack


# 4:3 images (crops always fit) and 61-pixel strips (about 43% of rows fall back to the centre
# square, whose offset (400 - 61) / 2 = 169.5 tells ceil from floor).
@pytest.mark.parametrize("h, w", [(375, 500), (500, 333), (61, 400), (400, 61)])
def test_offsets_are_independent_uniform_draws_as_the_references_randint(h, w):
    """pycls draws y = randint(0, H - h) and x = randint(0, W - w), independently of each other."""
    u = tf.random.stateless_uniform([DRAWS, crop.MAX_TRIES, crop.DRAWS_PER_TRY], [7, 2])
    windows = crop.pycls_window_from_uniforms(h, w, u).numpy().astype(np.int64)
    fits, h_crop, w_crop = _reference_sizes(h, w, u.numpy())
    y, x, hs, ws = windows.T
    np.testing.assert_array_equal(hs[fits], h_crop[fits])
    np.testing.assert_array_equal(ws[fits], w_crop[fits])

    # Fallback rows: pycls's centre crop of the shorter side, offset ceil((side - size) / 2).
    side = min(h, w)
    centre = [math.ceil((h - side) / 2), math.ceil((w - side) / 2), side, side]
    np.testing.assert_array_equal(windows[~fits], np.tile(centre, ((~fits).sum(), 1)))

    # Rows that fit: offsets within randint's range, each uniform, y independent of x.
    y, x, h_slack, w_slack = y[fits], x[fits], h - hs[fits], w - ws[fits]
    assert (y >= 0).all() and (y <= np.maximum(h_slack - 1, 0)).all()
    assert (x >= 0).all() and (x <= np.maximum(w_slack - 1, 0)).all()
    rng = np.random.default_rng(0)
    free_y, free_x = h_slack >= 1, w_slack >= 1
    ry = _randomized_offset(y[free_y], h_slack[free_y], rng)
    rx = _randomized_offset(x[free_x], w_slack[free_x], rng)
    assert min(free_y.sum(), free_x.sum()) > 2000
    assert stats.kstest(ry, "uniform").pvalue > P_MIN
    assert stats.kstest(rx, "uniform").pvalue > P_MIN
    both = free_y & free_x
    rho = stats.spearmanr(_randomized_offset(y[both], h_slack[both], rng),
                          _randomized_offset(x[both], w_slack[both], rng)).statistic
    assert abs(rho) < 4 / math.sqrt(both.sum()), rho  # 4 standard errors of a zero rank correlation


def test_seeded_window_is_the_vectorised_sampler_on_that_seeds_uniforms():
    shape = tf.constant([375, 500, 3], tf.int32)
    for i in range(20):
        seed = tf.constant([i, 3], tf.int64)
        u = tf.random.stateless_uniform([crop.MAX_TRIES, crop.DRAWS_PER_TRY], seed)
        np.testing.assert_array_equal(crop.pycls_window(shape, seed).numpy(),
                                      crop.pycls_window_from_uniforms(375, 500, u).numpy())


def test_fallback_is_the_centred_square_of_the_shorter_side():
    # A 40:1 strip: no crop of aspect 3/4-4/3 and area >= 8% (sides >= 15 px) fits its 10 rows.
    u = tf.random.stateless_uniform([50, crop.MAX_TRIES, crop.DRAWS_PER_TRY], [1, 1])
    windows = crop.pycls_window_from_uniforms(10, 400, u).numpy()
    rng = np.random.RandomState(1)
    assert all(_pycls_window(10, 400, rng)[0] == -1 for _ in range(50))
    np.testing.assert_array_equal(windows, np.tile([0, 195, 10, 10], (50, 1)))


def test_unknown_sampler_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="--crop='inception' is not allowed; choose one of pycls, tf_inception"):
        crop.window_sampler("inception")
