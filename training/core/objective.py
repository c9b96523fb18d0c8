"""The training objective and its metrics, written once in `keras.ops` for both engines.

A step returns `StepMetrics` of *sums* over its batch (never means), so they add up across
devices, steps and workers whatever the device count; a mean is taken once, on the host. Labels
are class indices (< 0: masked out) or soft label rows [B, C] from mixup/CutMix (an all-zero row
is a corrupt image). Imports neither TensorFlow nor JAX: the JAX engine's step uses it on machines
that have no TensorFlow.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from keras import ops

INVALID_LABEL = -1  # an undecodable record: masked out and counted as skipped
PADDING_LABEL = -2  # eval padding up to whole batches: masked out, not counted


class StepMetrics(NamedTuple):
    """One batch's sums: cross-entropy, top-1/top-5 hits, valid and undecodable (skipped) examples."""

    loss_sum: Any
    top1: Any
    top5: Any
    valid: Any
    invalid: Any

    def to_host(self) -> StepMetrics:
        """The same metrics as Python floats (reads the tensors once)."""
        return StepMetrics(**{name: float(value) for name, value in self._asdict().items()})


def _hits(logits: Any, labels: Any, k: int) -> Any:
    """1.0 where `labels` is among the top-k logits (k clipped to the class count), else 0.0."""
    return ops.cast(ops.in_top_k(labels, logits, k), "float32")


def batch_metrics(logits: Any, labels: Any, num_classes: int, label_smoothing: float) -> StepMetrics:
    """StepMetrics of one batch: summed (smoothed) cross-entropy, top-1/top-5 hits, valid/invalid counts.

    Hard labels < 0 are masked out; only INVALID_LABEL counts as invalid, PADDING_LABEL as neither.
    """
    logits = ops.cast(logits, "float32")
    if "float" in str(labels.dtype):
        return _soft_metrics(logits, labels, num_classes, label_smoothing)
    valid = labels >= 0
    safe = ops.where(valid, labels, ops.zeros_like(labels))
    weights = ops.cast(valid, "float32")
    if label_smoothing > 0:
        onehot = ops.one_hot(safe, num_classes)
        targets = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
        per_example = ops.categorical_crossentropy(targets, logits, from_logits=True)
    else:
        per_example = ops.sparse_categorical_crossentropy(safe, logits, from_logits=True)
    top5 = min(5, num_classes)
    invalid = ops.cast(ops.equal(labels, ops.cast(INVALID_LABEL, labels.dtype)), "float32")
    return StepMetrics(loss_sum=ops.sum(per_example * weights), top1=ops.sum(_hits(logits, safe, 1) * weights),
                       top5=ops.sum(_hits(logits, safe, top5) * weights), valid=ops.sum(weights),
                       invalid=ops.sum(invalid))


def _soft_metrics(logits: Any, targets: Any, num_classes: int, label_smoothing: float) -> StepMetrics:
    """As batch_metrics for soft label rows: a row's mass weights its loss (cross-entropy is linear in
    the targets); a hit is the dominant (argmax) label among the top predictions."""
    targets = ops.cast(targets, "float32")
    mass = ops.sum(targets, axis=-1)
    if label_smoothing > 0:
        targets = targets * (1.0 - label_smoothing) + mass[:, None] * (label_smoothing / num_classes)
    per_example = ops.categorical_crossentropy(targets, logits, from_logits=True)
    dominant = ops.cast(ops.argmax(targets, axis=-1), "int32")
    valid = ops.round(ops.sum(mass))  # mixing preserves the batch's total label mass
    invalid = ops.cast(ops.shape(targets)[0], "float32") - valid
    return StepMetrics(loss_sum=ops.sum(per_example), top1=ops.sum(_hits(logits, dominant, 1) * mass),
                       top5=ops.sum(_hits(logits, dominant, min(5, num_classes)) * mass), valid=valid,
                       invalid=invalid)
