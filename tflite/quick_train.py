"""A short Keras 3 training run on in-memory images, for the benchmarks and tests.

Only here so that export benchmarks and tests have a trained model without the training package;
real training is `python -m training.main` (training/), which this duplicates in miniature.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def quick_train(model: Any, images: np.ndarray, labels: np.ndarray, epochs: int = 3, learning_rate: float = 0.05,
                batch_size: int = 32, seed: int = 0, verbose: int = 0) -> list[float]:
    """Fit a logits model with SGD (Nesterov 0.9) + cosine decay; return the per-epoch train accuracy."""
    import keras

    if len(images) != len(labels) or not len(images):
        raise ValueError(f"quick_train needs as many labels as images, got {len(images)} and {len(labels)}")
    steps = epochs * int(np.ceil(len(images) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    keras.utils.set_random_seed(seed)
    order = np.random.default_rng(seed).permutation(len(images))
    history = model.fit(images[order], labels[order], batch_size=batch_size, epochs=epochs, verbose=verbose)
    return [float(a) for a in history.history["accuracy"]]
