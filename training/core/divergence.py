"""Exceptions shared by the trainer and the sweep runner, importable without TensorFlow."""

from __future__ import annotations


class Diverged(RuntimeError):
    """Training stopped because the model diverged (e.g. a NaN or infinite loss).

    `NonFiniteLoss` is one. A sweep records a diverged model as a failed result
    (top-1/top-5 error 100%, `"diverged": true`) instead of stopping, so a sweep with a model that
    always diverges at the sweep's learning rate still finishes and resumes. A custom
    `--train_fn` can raise it for the same treatment.
    """


class NonFiniteLoss(Diverged):
    """The training loss became NaN or infinite; the last good checkpoint is kept (both engines)."""
