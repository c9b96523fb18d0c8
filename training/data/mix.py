"""Mixup and CutMix on training batches, with soft labels, seeded statelessly per batch.

As timm's `Mixup` (batch mode): each batch is mixed with itself reversed (example i with
example B-1-i) using one lambda ~ Beta(alpha, alpha) per batch. Mixup blends whole images;
CutMix pastes a box covering a (1 - lambda) fraction of the image (clipped at the border) and
sets lambda to the area actually kept. With both alphas > 0, each batch uses CutMix with
probability `switch_prob`, else mixup. Labels become lambda * onehot(y_i) + (1 - lambda) *
onehot(y_{B-1-i}); a corrupt image's label (-1) has an all-zero one-hot row, so the total label
mass of a batch still equals its number of valid images.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class MixConfig:
    """Mixup / CutMix strengths (0: off) and the CutMix probability when both are on."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    switch_prob: float = 0.5

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


def sample_beta(seed: tf.Tensor, alpha: float) -> tf.Tensor:
    """One draw of Beta(alpha, alpha) from a stateless seed, as X / (X + Y) with X, Y ~ Gamma(alpha)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    x = tf.random.stateless_gamma([], seeds[0], alpha=alpha)
    y = tf.random.stateless_gamma([], seeds[1], alpha=alpha)
    total = x + y
    return tf.where(total > 0, x / tf.maximum(total, 1e-30), 0.5)  # both underflow: tiny alpha


def cutmix_box(height: int, width: int, lam: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(box mask [H, W, 1] of the pasted region, kept-area fraction) for a cut of area 1 - lam."""
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.round(ratio * height), tf.int32)
    cut_w = tf.cast(tf.round(ratio * width), tf.int32)
    centre = tf.random.stateless_uniform([2], seed, minval=0, maxval=1)
    cy = tf.cast(centre[0] * height, tf.int32)
    cx = tf.cast(centre[1] * width, tf.int32)
    y0, y1 = tf.maximum(cy - cut_h // 2, 0), tf.minimum(cy + cut_h - cut_h // 2, height)
    x0, x1 = tf.maximum(cx - cut_w // 2, 0), tf.minimum(cx + cut_w - cut_w // 2, width)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
    pasted = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / float(height * width)
    return inside[:, :, None], 1.0 - pasted


def mix_batch(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, num_classes: int,
              cfg: MixConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """(mixed images, soft labels [B, num_classes]) for one batch; identity with one-hot labels if off."""
    soft = tf.one_hot(labels, num_classes, dtype=tf.float32)  # label -1 -> all-zero row
    if not cfg.enabled:
        return images, soft
    seeds = tf.random.experimental.stateless_split(seed, 3)
    partner_images, partner_soft = tf.reverse(images, [0]), tf.reverse(soft, [0])
    use_cutmix = _choose_cutmix(seeds[0], cfg)
    lam = _beta_for(seeds[1], cfg, use_cutmix)
    height, width = images.shape[1], images.shape[2]

    def mixup() -> tuple[tf.Tensor, tf.Tensor]:
        weight = tf.cast(lam, images.dtype)
        return weight * images + (1 - weight) * partner_images, lam

    def cutmix() -> tuple[tf.Tensor, tf.Tensor]:
        inside, kept = cutmix_box(height, width, lam, seeds[2])
        return tf.where(inside[None], partner_images, images), kept

    mixed, kept = tf.cond(use_cutmix, cutmix, mixup)
    return mixed, kept * soft + (1.0 - kept) * partner_soft


def _choose_cutmix(seed: tf.Tensor, cfg: MixConfig) -> tf.Tensor:
    if cfg.mixup_alpha > 0 and cfg.cutmix_alpha > 0:
        return tf.random.stateless_uniform([], seed) < cfg.switch_prob
    return tf.constant(cfg.cutmix_alpha > 0)


def _beta_for(seed: tf.Tensor, cfg: MixConfig, use_cutmix: tf.Tensor) -> tf.Tensor:
    """lambda ~ Beta(alpha, alpha) with the alpha of the chosen method (each drawn only if on)."""
    if cfg.mixup_alpha > 0 and cfg.cutmix_alpha > 0:
        return tf.cond(use_cutmix, lambda: sample_beta(seed, cfg.cutmix_alpha),
                       lambda: sample_beta(seed, cfg.mixup_alpha))
    return sample_beta(seed, cfg.cutmix_alpha if cfg.cutmix_alpha > 0 else cfg.mixup_alpha)
