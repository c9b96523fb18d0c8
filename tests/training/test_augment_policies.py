"""--augment (RandAugment, TrivialAugment, AugMix) and --random_erasing: ops, ranges, draws, determinism.

References: timm's `timm/data/auto_augment.py` (op lists, `*_level_to_arg` ranges, `AugMixAugment`) and
`timm/data/random_erasing.py` (huggingface/pytorch-image-models); torchvision's
`TrivialAugmentWide._augmentation_space` (torchvision/transforms/autoaugment.py); Pillow's ImageOps,
ImageEnhance and Image.transform, which timm's ops call. The formulas are transcribed below; Pillow (a
matplotlib dependency of the test extras) and timm (where installed) are also compared directly.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from training.data import image_ops as ops
from training.data import policies
from training.data.erasing import erase_box, random_erase

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)
LOW_CONTRAST = (IMAGE // 2 + 30).astype(np.uint8)  # autocontrast/equalize have something to stretch


def _tf(x: np.ndarray) -> tf.Tensor:
    return tf.constant(x, tf.float32)


def _seeds(n: int, fn, salt: int = 7):
    """fn(seed) over n per-image seeds (salt, i), batched through tf.data (one graph, fast)."""
    ds = tf.data.Dataset.range(n).map(lambda i: fn(tf.stack([tf.constant(salt, tf.int64), i])))
    return next(iter(ds.batch(n)))


# ---- the ops against transcribed 8-bit formulas (Pillow's semantics, as timm calls them) ----

def _equalize_reference(channel: np.ndarray) -> np.ndarray:
    """Pillow's ImageOps.equalize for one band: the LUT from the histogram, as in its source."""
    h = np.bincount(channel.ravel(), minlength=256)
    nonzero = h[h > 0]
    if len(nonzero) <= 1:
        return channel
    step = (nonzero.sum() - nonzero[-1]) // 255
    if not step:
        return channel
    lut, n = [], step // 2
    for i in range(256):
        lut.append(min(255, n // step))
        n += h[i]
    return np.array(lut)[channel]


def _autocontrast_reference(channel: np.ndarray) -> np.ndarray:
    lo, hi = int(channel.min()), int(channel.max())
    if hi <= lo:
        return channel
    scale = 255.0 / (hi - lo)
    return np.clip([int(i * scale - lo * scale) for i in range(256)], 0, 255)[channel]


def _gray(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.int64)
    return (x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000) >> 16


def _blend(degenerate: np.ndarray, x: np.ndarray, f: float) -> np.ndarray:
    """Pillow's Image.blend in single precision (its `float` alpha), stored truncated."""
    d = degenerate.astype(np.float32)
    return np.floor(np.clip(d + np.float32(f) * (x.astype(np.float32) - d), 0, 255))


REFERENCES = {
    "invert": (ops.invert, 0, lambda x: 255 - x.astype(int)),
    "solarize": (ops.solarize, 100, lambda x: np.where(x >= 100, 255 - x.astype(int), x)),
    "solarize_add": (ops.solarize_add, 60, lambda x: np.where(x < 128, np.minimum(255, x.astype(int) + 60), x)),
    "posterize": (ops.posterize, 3, lambda x: x.astype(int) & ~(2 ** (8 - 3) - 1)),
    "posterize_0": (ops.posterize, 0, lambda x: np.zeros_like(x)),  # old Pillow's mask 0 (timm's level 0)
    "equalize": (ops.equalize, 0, lambda x: np.stack([_equalize_reference(x[..., c]) for c in range(3)], -1)),
    "auto_contrast": (ops.auto_contrast, 0,
                      lambda x: np.stack([_autocontrast_reference(x[..., c]) for c in range(3)], -1)),
    "color": (ops.color, 1.6, lambda x: _blend(np.repeat(_gray(x)[..., None], 3, -1), x, 1.6)),
    "contrast": (ops.contrast, 0.4, lambda x: _blend(np.full(x.shape, int(_gray(x).mean() + 0.5)), x, 0.4)),
    "brightness": (ops.brightness, 1.3, lambda x: _blend(np.zeros(x.shape), x, 1.3)),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_pixel_op_equals_the_transcribed_8bit_formula(name):
    fn, arg, reference = REFERENCES[name]
    x = LOW_CONTRAST if name in ("equalize", "auto_contrast") else IMAGE
    np.testing.assert_array_equal(fn(_tf(x), tf.constant(arg, tf.float32)).numpy(), reference(x))


def test_integer_translation_and_quarter_turn_move_pixels_exactly_with_timms_fill():
    x = _tf(IMAGE)
    moved = ops.translate_x(x, tf.constant(3.0)).numpy()
    np.testing.assert_array_equal(moved[:, :-3], IMAGE[:, 3:])  # AFFINE (1, 0, 3, ...): content moves left
    np.testing.assert_array_equal(moved[:, -3:], np.broadcast_to(ops.FILL, (13, 3, 3)))
    down = ops.translate_y(x, tf.constant(-2.0)).numpy()
    np.testing.assert_array_equal(down[2:], IMAGE[:-2])
    square = IMAGE[:, :13]
    np.testing.assert_array_equal(ops.rotate(_tf(square), tf.constant(90.0)).numpy(), np.rot90(square))


PIL_OPS = {
    "auto_contrast": (ops.auto_contrast, 0, lambda P, im: P.ImageOps.autocontrast(im)),
    "equalize": (ops.equalize, 0, lambda P, im: P.ImageOps.equalize(im)),
    "posterize": (ops.posterize, 2, lambda P, im: P.ImageOps.posterize(im, 2)),
    "solarize": (ops.solarize, 77, lambda P, im: P.ImageOps.solarize(im, 77)),
    "color": (ops.color, 0.3, lambda P, im: P.ImageEnhance.Color(im).enhance(0.3)),
    "contrast": (ops.contrast, 1.9, lambda P, im: P.ImageEnhance.Contrast(im).enhance(1.9)),
    "brightness": (ops.brightness, 0.55, lambda P, im: P.ImageEnhance.Brightness(im).enhance(0.55)),
    "sharpness": (ops.sharpness, 1.72, lambda P, im: P.ImageEnhance.Sharpness(im).enhance(1.72)),
    "sharpness_low": (ops.sharpness, 0.1, lambda P, im: P.ImageEnhance.Sharpness(im).enhance(0.1)),
}


def _pil():
    pil = pytest.importorskip("PIL")
    from PIL import Image, ImageEnhance, ImageOps  # noqa: F401

    return pil


@pytest.mark.parametrize("name", sorted(PIL_OPS))
def test_pixel_op_equals_pillow(name):
    P = _pil()
    fn, arg, reference = PIL_OPS[name]
    x = LOW_CONTRAST if name in ("equalize", "auto_contrast") else IMAGE
    expected = np.asarray(reference(P, P.Image.fromarray(x)))
    np.testing.assert_array_equal(fn(_tf(x), tf.constant(arg, tf.float32)).numpy(), expected)


@pytest.mark.parametrize("name, fn, arg, matrix", [
    ("shear_x", ops.shear_x, 0.27, (1, 0.27, 0, 0, 1, 0)),
    ("shear_y", ops.shear_y, -0.2, (1, 0, 0, -0.2, 1, 0)),
    ("translate_x", ops.translate_x, 3.4, (1, 0, 3.4, 0, 1, 0)),
    ("rotate", ops.rotate, 27.0, None),
])
def test_geometric_op_matches_pillows_bilinear_affine(name, fn, arg, matrix):
    """Same sampling grid and fill as Pillow; float32 vs double rounding moves a few pixels by 1, and a
    sample exactly on the border can fall on the other side of it."""
    P = _pil()
    im = P.Image.fromarray(IMAGE)
    kw = dict(resample=P.Image.BILINEAR, fillcolor=tuple(int(v) for v in ops.FILL))
    expected = np.asarray(im.rotate(arg, **kw) if matrix is None else im.transform(im.size, P.Image.AFFINE, matrix, **kw))
    diff = np.abs(fn(_tf(IMAGE), tf.constant(arg, tf.float32)).numpy() - expected)
    assert np.mean(diff > 0) < 0.06 and np.mean(diff > 1) < 0.01, (np.mean(diff > 0), np.mean(diff > 1))


# ---- the policies' op lists and magnitude ranges (timm / torchvision, transcribed) ----

def _args(table, level: float, sign: float = 1.0, width: float = 200.0) -> dict[str, float]:
    return {name: float(arg(tf.constant(level), tf.constant(sign), tf.constant(width)))
            for name, _, arg in table}


def test_randaugment_ops_and_ranges_are_timms():
    assert [name for name, _, _ in policies.RANDAUGMENT_OPS] == [
        "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
        "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"]
    for magnitude in (0.0, 5.0, 9.0, 10.0):
        lv = magnitude / 10.0
        for sign in (1.0, -1.0):
            got = _args(policies.RANDAUGMENT_OPS, lv, sign)
            want = {"Rotate": sign * lv * 30.0, "Posterize": int(lv * 4), "Solarize": int(lv * 256),
                    "SolarizeAdd": int(lv * 110), "Color": lv * 1.8 + 0.1, "Contrast": lv * 1.8 + 0.1,
                    "Brightness": lv * 1.8 + 0.1, "Sharpness": lv * 1.8 + 0.1, "ShearX": sign * lv * 0.3,
                    "ShearY": sign * lv * 0.3, "TranslateXRel": sign * lv * 0.45 * 200.0,
                    "TranslateYRel": sign * lv * 0.45 * 200.0}
            for name, value in want.items():
                assert got[name] == pytest.approx(value, abs=1e-4), (name, magnitude, sign)


def test_trivialaugment_ops_and_ranges_are_torchvisions_wide_space():
    assert [name for name, _, _ in policies.TRIVIAL_OPS] == [
        "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
        "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]
    bins = np.arange(31)
    linspace = lambda top: np.linspace(0.0, top, 31)  # noqa: E731
    for b in (0, 7, 15, 30):
        got = _args(policies.TRIVIAL_OPS, b / 30.0, -1.0, width=224.0)
        want = {"ShearX": -linspace(0.99)[b], "Rotate": -linspace(135.0)[b], "TranslateX": -linspace(32.0)[b],
                "Brightness": 1 - linspace(0.99)[b], "Sharpness": 1 - linspace(0.99)[b],
                "Posterize": (8 - np.round(bins / ((31 - 1) / 6)).astype(int))[b],
                "Solarize": np.linspace(255.0, 0.0, 31)[b]}
        for name, value in want.items():
            assert got[name] == pytest.approx(value, abs=1e-3), (name, b)


def test_augmix_ops_and_ranges_are_timms_increasing_variants():
    assert [name for name, _, _ in policies.AUGMIX_OPS] == [
        "AutoContrast", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
        "Equalize", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "ShearX", "ShearY", "TranslateXRel",
        "TranslateYRel"]
    for lv in (0.0, 0.3, 1.0):
        got = _args(policies.AUGMIX_OPS, lv, -1.0)
        assert got["PosterizeIncreasing"] == 4 - int(lv * 4)
        assert got["SolarizeIncreasing"] == 256 - int(lv * 256)
        assert got["ColorIncreasing"] == pytest.approx(max(0.1, 1.0 - lv * 0.9))


def test_randaugment_level_arguments_equal_timms_own():
    """Where timm is installed: its LEVEL_TO_ARG at each magnitude (its sign is random: compare |arg|)."""
    from tests.helpers.timm_import import import_timm

    if import_timm() is None:
        pytest.skip("timm (and torch) not installed")
    import importlib

    aa = importlib.import_module("timm.data.auto_augment")
    hparams = {"translate_pct": 0.45}
    for name, _, arg in policies.RANDAUGMENT_OPS + policies.AUGMIX_OPS:
        level_fn = aa.LEVEL_TO_ARG[name]
        for magnitude in (1.0, 4.0, 9.0, 10.0):
            ours = float(arg(tf.constant(magnitude / 10.0), tf.constant(1.0), tf.constant(1.0)))
            if level_fn is None:
                continue
            theirs = level_fn(magnitude, hparams)[0]
            assert abs(ours) == pytest.approx(abs(theirs), abs=1e-4) or name.endswith("Increasing") and \
                abs(ours) == pytest.approx(2.0 - abs(theirs), abs=1e-4), (name, magnitude, ours, theirs)


# ---- the draws: uniform ops, probabilities, magnitudes ----

def test_randaugment_draws_ops_uniformly_applies_half_and_centres_the_magnitude():
    from scipy.stats import chisquare

    n = 3000

    def first(seed):
        d = policies.randaugment_draws(seed, 2, 9.0, 0.5)
        return d[0].index, d[1].index, tf.cast(d[0].applied, tf.float32), d[0].level

    i0, i1, applied, level = (t.numpy() for t in _seeds(n, first))
    for index in (i0, i1):
        counts = np.bincount(index, minlength=15)
        assert len(counts) == 15 and chisquare(counts).pvalue > 1e-3, counts
    assert np.mean(i0 == i1) < 0.2  # the two layers draw independently (1/15 expected)
    se = math.sqrt(0.25 / n)
    assert abs(applied.mean() - 0.5) < 3 * se
    assert abs(level.mean() - 0.9) < 3 * 0.05 / math.sqrt(n) + 1e-3 and 0.04 < level.std() < 0.06


def test_trivialaugment_draws_ops_and_bins_uniformly():
    from scipy.stats import chisquare

    index, level = (t.numpy() for t in _seeds(3000, lambda s: (policies.trivialaugment_draw(s).index,
                                                            policies.trivialaugment_draw(s).level)))
    assert chisquare(np.bincount(index, minlength=14)).pvalue > 1e-3
    bins = np.round(level * 30).astype(int)
    assert bins.min() == 0 and bins.max() == 30 and chisquare(np.bincount(bins, minlength=31)).pvalue > 1e-3


def test_augmix_weights_are_a_dirichlet_and_a_uniform_blend():
    weights, m = (t.numpy() for t in _seeds(2000, policies.augmix_weights))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    # Dirichlet(1, 1, 1): each weight ~ Beta(1, 2), mean 1/3, var 1/18; m ~ Beta(1, 1) = U(0, 1).
    assert abs(weights.mean() - 1 / 3) < 3 * math.sqrt(1 / 18 / 2000)
    assert abs(m.mean() - 0.5) < 3 * math.sqrt(1 / 12 / 2000) and abs(m.var() - 1 / 12) < 0.01


@pytest.mark.parametrize("augment", ["randaugment", "trivialaugment", "augmix"])
def test_each_policy_keeps_8bit_images_and_changes_some(augment):
    fn = policies.policy_fn(policies.PolicyConfig(augment))
    x = _tf(LOW_CONTRAST)
    outs = [fn(x, tf.constant([1, i], tf.int64)).numpy() for i in range(12)]
    for out in outs:
        assert out.shape == IMAGE.shape and out.min() >= 0 and out.max() <= 255
        np.testing.assert_array_equal(out, np.round(out))
    assert sum(not np.array_equal(out, LOW_CONTRAST) for out in outs) >= 4
    np.testing.assert_array_equal(fn(x, tf.constant([1, 3], tf.int64)).numpy(), outs[3])  # same seed, same image


# ---- random erasing ----

def test_random_erasing_frequency_is_p_within_3_standard_errors_and_boxes_are_timms():
    n, p = 2000, 0.25
    flat = tf.fill([24, 32, 3], 500.0)  # a value the noise (mean +- a few std on 0-255) never takes
    erased = _seeds(n, lambda s: tf.reduce_any(random_erase(flat, s, p) != 500.0)).numpy()
    assert abs(erased.mean() - p) < 3 * math.sqrt(p * (1 - p) / n), erased.mean()
    boxes = _seeds(n, lambda s: erase_box(s, tf.constant(24), tf.constant(32))).numpy()
    top, left, h, w = boxes.T
    ok = h > 0
    assert ok.mean() > 0.95
    assert np.all(top + h <= 24) and np.all(left + w <= 32) and np.all(h[ok] < 24) and np.all(w[ok] < 32)
    area = h[ok] * w[ok] / (24 * 32)
    # timm: area uniform in [0.02, 1/3] before rounding each side; aspect in [0.3, 1/0.3].
    assert area.min() > 0.005 and area.max() < 0.45 and 0.12 < area.mean() < 0.22
    assert (h[ok] / w[ok]).max() < 1 / 0.3 * 1.6 and (h[ok] / w[ok]).min() > 0.3 / 1.6


# ---- the pipeline: default unchanged, a pure function of (seed, epoch, position), resumable ----

def test_policies_off_leave_the_source_itself():
    from training.core.config import TrainConfig
    from training.data import digits_stream, with_augment

    source = digits_stream.make_source()
    assert with_augment(source, TrainConfig()) is source
    assert with_augment(source, TrainConfig(augment="trivialaugment")).train_map is not source.train_map


@pytest.mark.parametrize("augment, erasing", [("randaugment", 0.25), ("trivialaugment", 0.0)])
def test_policy_stream_is_a_function_of_seed_epoch_and_position_and_resumes(augment, erasing):
    from training.core.config import TrainConfig
    from training.data import digits_stream, with_augment
    from training.data.pipeline import train_dataset

    plain = digits_stream.make_source()
    source = with_augment(plain, TrainConfig(augment=augment, random_erasing=erasing))
    kwargs = dict(batch_size=8, epoch=1, image_size=16, seed=5, deterministic=True)
    full = [x.numpy() for x, _ in train_dataset(source, None, start_batch=0, num_batches=3, **kwargs)]
    tail = [x.numpy() for x, _ in train_dataset(source, None, start_batch=1, num_batches=2, **kwargs)]
    base = [x.numpy() for x, _ in train_dataset(plain, None, start_batch=0, num_batches=3, **kwargs)]
    for a, b in zip(full[1:], tail):
        np.testing.assert_array_equal(a, b)
    images = np.concatenate(full)
    assert len({im.tobytes() for im in images}) == len(images)  # different positions differ
    changed = [not np.array_equal(a, np.clip(np.round(b), 0, 255)) for a, b in zip(images, np.concatenate(base))]
    assert np.mean(changed) > 0.3


# ---- flags: validation, config.json, resume ----

@pytest.mark.parametrize("changes, message", [
    (dict(augment="autoaugment"), "--augment='autoaugment' is not allowed; choose one of none, randaugment"),
    (dict(augment="trivialaugment", augment_magnitude=5.0), "--augment_magnitude is used by "
                                                             "--augment=randaugment|augmix only"),
    (dict(augment="augmix", augment_num_ops=3), "--augment_num_ops is used by --augment=randaugment only"),
    (dict(augment="randaugment", augment_magnitude=11.0), r"--augment_magnitude must be in \[0, 10\]"),
    (dict(augment="randaugment", augment_num_ops=0), r"--augment_num_ops must be an integer in \[1, 10\]"),
    (dict(augment="randaugment", augment_magnitude_std=-1.0), "--augment_magnitude_std must be a finite"),
    (dict(random_erasing=1.5), r"--random_erasing must be in \[0, 1\]"),
])
def test_bad_augment_flags_are_one_line_errors(changes, message):
    from training.core.config import TrainConfig, validate

    with pytest.raises(ValueError, match=message) as error:
        validate(TrainConfig(**changes))
    assert "\n" not in str(error.value)


def test_augment_flags_are_recorded_and_a_changed_policy_refuses_to_resume():
    from training.core.config import TrainConfig
    from training.core.run_identity import RESUME_KEYS, check_same_run

    for key in ("augment", "augment_magnitude", "augment_num_ops", "augment_magnitude_std", "random_erasing"):
        assert key in RESUME_KEYS
    cfg = TrainConfig(augment="randaugment", random_erasing=0.25)
    saved = json.loads(json.dumps({k: getattr(cfg, k) for k in RESUME_KEYS}))
    current = {**saved, "augment": "trivialaugment"}
    with pytest.raises(ValueError, match="--augment='trivialaugment' differs"):
        check_same_run(saved, current, TrainConfig(augment="trivialaugment"))
