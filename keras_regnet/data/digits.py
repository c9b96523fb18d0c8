"""The embedded digits split: scikit-learn's 8x8 handwritten digits, with a fixed held-out fifth.

1797 real scanned digits (UCI optdigits test set) ship inside scikit-learn, so the default
training run and the export's calibration need no download. Training (training.data.digits_stream)
and the export's readers (tflite.calibration) take the split from here, so a model trained by
`python -m training.main` is scored by the export on exactly the images it never saw.
"""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 10
HOLDOUT_EVERY = 5


def load_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, eval_x, eval_y): uint8 8x8 images (0-255) and int labels; every 5th image
    of each class is held out."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    held_out = np.zeros(len(labels), dtype=bool)
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        held_out[idx[::HOLDOUT_EVERY]] = True
    return images[~held_out], labels[~held_out], images[held_out], labels[held_out]
