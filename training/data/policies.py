"""Augmentation policies after the random-sized crop: RandAugment, TrivialAugment (wide) and AugMix.

Each policy is a pure function of (image, seed): its draws come from TensorFlow's stateless random ops on
splits of the per-image seed that `training.data.pipeline.train_dataset` derives from (seed, epoch,
position), so the feed stays a function of those and a resumed run sees the same images. Keras' own
`RandAugment`/`AugMix` layers are not used: in keras 3.15 they draw from the layer's `SeedGenerator`
variable (their `seed` argument is ignored, and `draw_seed` refuses a tensor seed), so inside a parallel
tf.data map their draws depend on call order, not on the image's position.

Op lists and magnitude ranges are timm's (`timm/data/auto_augment.py` in huggingface/pytorch-image-models:
`_RAND_TRANSFORMS`, `_AUGMIX_TRANSFORMS`, the `*_level_to_arg` functions, `AugMixAugment`) and
torchvision's `TrivialAugmentWide._augmentation_space` (torchvision/transforms/autoaugment.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

from keras_regnet.errors import ConfigError
from training.data import image_ops as ops

POLICIES = ("none", "randaugment", "trivialaugment", "augmix")
MAX_LEVEL = 10.0  # timm's _LEVEL_DENOM: magnitudes are on a 0-10 scale
RANDAUGMENT_MAGNITUDE = 9.0  # timm's rand-m9-mstd0.5 (its RegNet ra/ra3 recipes)
RANDAUGMENT_MAGNITUDE_STD = 0.5
RANDAUGMENT_NUM_OPS = 2
RANDAUGMENT_OP_PROB = 0.5  # timm's rand_augment_ops: each chosen op applies with probability 0.5
AUGMIX_SEVERITY = 3.0  # timm's augment_and_mix_transform defaults (the AugMix paper's): m3, w3, d-1, alpha 1
AUGMIX_WIDTH = 3
AUGMIX_MAX_DEPTH = 3  # depth -1: each chain has 1-3 ops, uniform
AUGMIX_ALPHA = 1.0
TRIVIAL_BINS = 31  # torchvision's TrivialAugmentWide num_magnitude_bins

# An op: (name, image function, argument from (level in [0, 1], sign +-1, image width)).
Arg = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
Op = tuple[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor], Arg]


def _none(level: tf.Tensor, sign: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    return tf.constant(0.0)


def _enhance(level: tf.Tensor, sign: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    return level * 1.8 + 0.1  # [0.1, 1.9]


def _enhance_increasing(level: tf.Tensor, sign: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    return tf.maximum(0.1, 1.0 + sign * level * 0.9)


def _int(value: tf.Tensor) -> tf.Tensor:
    return tf.floor(value + 1e-6)  # Python's int() of a non-negative level product (float32 guard)


# The geometric ops RandAugment and AugMix share, with timm's ranges.
_ROTATE: Op = ("Rotate", ops.rotate, lambda lv, s, w: s * lv * 30.0)
_SHEAR_TRANSLATE: tuple[Op, ...] = (
    ("ShearX", ops.shear_x, lambda lv, s, w: s * lv * 0.3),
    ("ShearY", ops.shear_y, lambda lv, s, w: s * lv * 0.3),
    ("TranslateXRel", ops.translate_x, lambda lv, s, w: s * lv * 0.45 * w),
    ("TranslateYRel", ops.translate_y, lambda lv, s, w: s * lv * 0.45 * w),
)

RANDAUGMENT_OPS: tuple[Op, ...] = (
    ("AutoContrast", ops.auto_contrast, _none),
    ("Equalize", ops.equalize, _none),
    ("Invert", ops.invert, _none),
    _ROTATE,
    ("Posterize", ops.posterize, lambda lv, s, w: _int(lv * 4.0)),
    ("Solarize", ops.solarize, lambda lv, s, w: _int(lv * 256.0)),
    ("SolarizeAdd", ops.solarize_add, lambda lv, s, w: _int(lv * 110.0)),
    ("Color", ops.color, _enhance),
    ("Contrast", ops.contrast, _enhance),
    ("Brightness", ops.brightness, _enhance),
    ("Sharpness", ops.sharpness, _enhance),
    *_SHEAR_TRANSLATE,
)

AUGMIX_OPS: tuple[Op, ...] = (
    ("AutoContrast", ops.auto_contrast, _none),
    ("ColorIncreasing", ops.color, _enhance_increasing),
    ("ContrastIncreasing", ops.contrast, _enhance_increasing),
    ("BrightnessIncreasing", ops.brightness, _enhance_increasing),
    ("SharpnessIncreasing", ops.sharpness, _enhance_increasing),
    ("Equalize", ops.equalize, _none),
    _ROTATE,
    ("PosterizeIncreasing", ops.posterize, lambda lv, s, w: 4.0 - _int(lv * 4.0)),
    ("SolarizeIncreasing", ops.solarize, lambda lv, s, w: 256.0 - _int(lv * 256.0)),
    *_SHEAR_TRANSLATE,
)

# TrivialAugmentWide: level = bin / 30. Translation is 32 px at 224 px in torchvision (absolute); here it
# is that fraction of the width (32/224), so the op means the same at every --image_size.
TRIVIAL_OPS: tuple[Op, ...] = (
    ("Identity", ops.identity, _none),
    ("ShearX", ops.shear_x, lambda lv, s, w: s * lv * 0.99),
    ("ShearY", ops.shear_y, lambda lv, s, w: s * lv * 0.99),
    ("TranslateX", ops.translate_x, lambda lv, s, w: s * lv * (32.0 / 224.0) * w),
    ("TranslateY", ops.translate_y, lambda lv, s, w: s * lv * (32.0 / 224.0) * w),
    ("Rotate", ops.rotate, lambda lv, s, w: s * lv * 135.0),
    ("Brightness", ops.brightness, lambda lv, s, w: 1.0 + s * lv * 0.99),
    ("Color", ops.color, lambda lv, s, w: 1.0 + s * lv * 0.99),
    ("Contrast", ops.contrast, lambda lv, s, w: 1.0 + s * lv * 0.99),
    ("Sharpness", ops.sharpness, lambda lv, s, w: 1.0 + s * lv * 0.99),
    ("Posterize", ops.posterize, lambda lv, s, w: 8.0 - tf.round(lv * 6.0)),
    ("Solarize", ops.solarize, lambda lv, s, w: 255.0 * (1.0 - lv)),
    ("AutoContrast", ops.auto_contrast, _none),
    ("Equalize", ops.equalize, _none),
)


@dataclass(frozen=True)
class PolicyConfig:
    """--augment and its knobs (None: the policy's default) and --random_erasing."""

    augment: str = "none"
    magnitude: float | None = None
    num_ops: int | None = None
    magnitude_std: float | None = None
    random_erasing: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.augment != "none" or self.random_erasing > 0


@dataclass(frozen=True)
class Draw:
    """One op application a policy drew: which op, whether it applies, its level in [0, 1] and sign."""

    index: tf.Tensor
    applied: tf.Tensor
    level: tf.Tensor
    sign: tf.Tensor


def _sign(seed: tf.Tensor) -> tf.Tensor:
    return tf.where(tf.random.stateless_uniform([], seed) < 0.5, -1.0, 1.0)


def apply_op(image: tf.Tensor, table: tuple[Op, ...], draw: Draw) -> tf.Tensor:
    """`image` through table[draw.index] at the draw's level and sign, or unchanged when not applied."""
    width = tf.cast(tf.shape(image)[1], tf.float32)

    def branch(op: Op) -> Callable[[], tf.Tensor]:
        return lambda: op[1](image, op[2](draw.level, draw.sign, width))

    index = tf.where(draw.applied, draw.index, len(table))
    return tf.switch_case(tf.cast(index, tf.int32), [branch(op) for op in table] + [lambda: image])


def randaugment_draws(seed: tf.Tensor, num_ops: int, magnitude: float, magnitude_std: float) -> list[Draw]:
    """timm's RandAugment: `num_ops` ops uniform with replacement, each applied with probability 0.5 at a
    magnitude ~ N(magnitude, magnitude_std) clipped to [0, 10] (timm's AugmentOp)."""
    draws = []
    for s in tf.unstack(tf.random.experimental.stateless_split(seed, num_ops)):
        k = tf.unstack(tf.random.experimental.stateless_split(s, 4))
        index = tf.random.stateless_uniform([], k[0], 0, len(RANDAUGMENT_OPS), dtype=tf.int32)
        applied = tf.random.stateless_uniform([], k[1]) < RANDAUGMENT_OP_PROB
        noise = tf.random.stateless_normal([], k[2]) * magnitude_std
        level = tf.clip_by_value(magnitude + noise, 0.0, MAX_LEVEL) / MAX_LEVEL
        draws.append(Draw(index, applied, level, _sign(k[3])))
    return draws


def randaugment(image: tf.Tensor, seed: tf.Tensor, num_ops: int = RANDAUGMENT_NUM_OPS,
                magnitude: float = RANDAUGMENT_MAGNITUDE,
                magnitude_std: float = RANDAUGMENT_MAGNITUDE_STD) -> tf.Tensor:
    """RandAugment (timm's rand-m{magnitude}-n{num_ops}-mstd{magnitude_std}) on an 8-bit float image."""
    for draw in randaugment_draws(seed, num_ops, magnitude, magnitude_std):
        image = apply_op(image, RANDAUGMENT_OPS, draw)
    return image


def trivialaugment_draw(seed: tf.Tensor) -> Draw:
    """TrivialAugmentWide: one op uniform of 14, one magnitude bin uniform of 31, a random sign."""
    k = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    index = tf.random.stateless_uniform([], k[0], 0, len(TRIVIAL_OPS), dtype=tf.int32)
    level_bin = tf.random.stateless_uniform([], k[1], 0, TRIVIAL_BINS, dtype=tf.int32)
    level = tf.cast(level_bin, tf.float32) / (TRIVIAL_BINS - 1)
    return Draw(index, tf.constant(True), level, _sign(k[2]))


def trivialaugment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """TrivialAugment (torchvision's TrivialAugmentWide op space) on an 8-bit float image."""
    return apply_op(image, TRIVIAL_OPS, trivialaugment_draw(seed))


def augmix_weights(seed: tf.Tensor, width: int = AUGMIX_WIDTH,
                   alpha: float = AUGMIX_ALPHA) -> tuple[tf.Tensor, tf.Tensor]:
    """(chain weights ~ Dirichlet(alpha, ..., alpha), blend m ~ Beta(alpha, alpha)), from Gamma draws."""
    k = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    g = tf.random.stateless_gamma([width], k[0], alpha=alpha)
    b = tf.random.stateless_gamma([2], k[1], alpha=alpha)
    return g / tf.reduce_sum(g), b[0] / (b[0] + b[1])


def augmix(image: tf.Tensor, seed: tf.Tensor, severity: float = AUGMIX_SEVERITY,
           width: int = AUGMIX_WIDTH, max_depth: int = AUGMIX_MAX_DEPTH) -> tf.Tensor:
    """timm's AugMixAugment (basic mode): `width` chains of 1-`max_depth` ops (uniform of 13, magnitude
    uniform in [0, severity]), mixed with Dirichlet weights, then blended with the image by m ~ Beta."""
    keys = tf.unstack(tf.random.experimental.stateless_split(seed, width + 1))
    weights, m = augmix_weights(keys[-1], width)
    mixed = tf.zeros_like(image)
    for chain in range(width):
        k = tf.unstack(tf.random.experimental.stateless_split(keys[chain], max_depth + 1))
        depth = tf.random.stateless_uniform([], k[-1], 1, max_depth + 1, dtype=tf.int32)
        out = image
        for step in range(max_depth):
            s = tf.unstack(tf.random.experimental.stateless_split(k[step], 3))
            index = tf.random.stateless_uniform([], s[0], 0, len(AUGMIX_OPS), dtype=tf.int32)
            level = tf.random.stateless_uniform([], s[1], 0.0, severity) / MAX_LEVEL
            out = apply_op(out, AUGMIX_OPS, Draw(index, step < depth, level, _sign(s[2])))
        mixed += weights[chain] * out
    mixed = tf.floor(tf.clip_by_value(mixed, 0.0, 255.0))
    return tf.floor(image + m * (mixed - image))


def policy_fn(cfg: PolicyConfig) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None:
    """(8-bit float image, seed) -> image for cfg.augment; None for "none"."""
    if cfg.augment == "randaugment":
        num_ops = RANDAUGMENT_NUM_OPS if cfg.num_ops is None else cfg.num_ops
        magnitude = RANDAUGMENT_MAGNITUDE if cfg.magnitude is None else cfg.magnitude
        std = RANDAUGMENT_MAGNITUDE_STD if cfg.magnitude_std is None else cfg.magnitude_std
        return lambda image, seed: randaugment(image, seed, num_ops, magnitude, std)
    if cfg.augment == "trivialaugment":
        return trivialaugment
    if cfg.augment == "augmix":
        severity = AUGMIX_SEVERITY if cfg.magnitude is None else cfg.magnitude
        return lambda image, seed: augmix(image, seed, severity)
    if cfg.augment == "none":
        return None
    raise ConfigError(f"--augment={cfg.augment!r} is not allowed; choose one of {', '.join(POLICIES)}")


def policy_seed(seed: tf.Tensor) -> tf.Tensor:
    """The policy's key, folded from the image's seed (the crop/flip/lighting keep theirs unchanged)."""
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), POLICY_SALT)


POLICY_SALT = 38  # any constant: the policy's key differs from the map's own splits of the seed


def with_policy(train_map: Callable[[tf.Tensor, tf.Tensor, int], tf.Tensor],
                cfg: PolicyConfig) -> Callable[[tf.Tensor, tf.Tensor, int], tf.Tensor]:
    """A Source's train_map followed by cfg's policy and random erasing (the map itself unchanged).

    The map's output (after the random-sized crop, flip, resize and any lighting) is rounded and clipped
    to 8-bit values for the policy, whose ops are Pillow's; erasing comes last, as timm's after its
    normalization. Both draw from keys folded from the image's seed, so the stream stays a function of
    (seed, epoch, position). With neither on, `train_map` itself is returned: the default is unchanged.
    """
    from training.data.erasing import random_erase

    policy = policy_fn(cfg)
    if not cfg.enabled:
        return train_map

    def mapped(payload: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
        image = train_map(payload, seed, size)
        keys = tf.unstack(tf.random.experimental.stateless_split(policy_seed(seed), 2))
        if policy is not None:
            image = policy(ops.to_8bit(image), keys[0])
        if cfg.random_erasing > 0:
            image = random_erase(image, keys[1], cfg.random_erasing)
        return image

    return mapped
