"""Will the TensorFlow batch stage fit in memory? An analytic estimate of its peak, checked up front.

`design_lab.latency` times TensorFlow inference of a batch of B images. Its memory is the weights
(held once by Keras, once more as the kernels' reordered copies) plus the batch's activations, so
    peak_bytes = SAFETY * dtype_bytes * (2 * params + B * acts)
with `acts` the complexity's activation count per image at the measured resolution. Measured as the
growth of resident memory from before the model is built to the peak of the timed batch (float32,
TF 2.21, oneDNN, 2-core x86; docs/design_spaces.md), the estimate is 0.9x (RegNetX-200MF, 64px,
B=64: 76 vs 82 MiB), 1.9x (RegNetY-4.0GF, 64px, B=64) and 1.7x (RegNetX-16GF, 64px, B=16) the peak:
SAFETY = 1.25 makes small models' fixed overhead count and keeps large ones on the safe side.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from keras_regnet.complexity import Complexity, complexity
from keras_regnet.errors import ConfigError

SAFETY = 1.25
WEIGHT_COPIES = 2  # the Keras variables and the convolution kernels' reordered copies


def tf_batch_peak_bytes(cx: Complexity, batch_size: int, dtype_bytes: int = 4) -> int:
    """Estimated peak memory of TensorFlow inference on `batch_size` images of a network costing `cx`."""
    return round(SAFETY * dtype_bytes * (WEIGHT_COPIES * cx.params + batch_size * cx.acts))


def available_memory_bytes() -> int:
    """Memory available to a new allocation now: psutil's figure if installed, else /proc/meminfo's."""
    try:
        import psutil
    except ImportError:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    else:
        return int(psutil.virtual_memory().available)
    raise OSError("/proc/meminfo has no MemAvailable line")


def _gib(n: float) -> str:
    """Bytes as GiB with one decimal place (or MiB below one GiB)."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_tf_batch_fits(population: Iterable[Any], image_size: int, classes: int, batch_size: int,
                        available: Optional[int] = None, dtype_bytes: int = 4) -> None:
    """Refuse (ConfigError) a population whose largest TF batch-stage estimate exceeds available memory.

    `population` holds samples with `.index` and `.spec`, costed here at `image_size` (a reused
    sweep's own complexity may be at another size); `available` defaults to
    `available_memory_bytes()` (tests inject a value). Nothing is built.
    """
    if not batch_size:
        return
    costed = [(s, complexity(s.spec, image_size, classes=classes)) for s in population]
    if not costed:
        return
    largest, cx = max(costed, key=lambda pair: tf_batch_peak_bytes(pair[1], batch_size, dtype_bytes))
    need = tf_batch_peak_bytes(cx, batch_size, dtype_bytes)
    have = available_memory_bytes() if available is None else int(available)
    if need > have:
        raise ConfigError(
            f"model {largest.index} ({largest.spec.name or 'sampled'}, {cx.flops / 1e6:.0f}MF, "
            f"{cx.params / 1e6:.1f}M params, {cx.acts / 1e6:.2f}M acts at {image_size}px) needs about "
            f"{_gib(need)} for the TF batch of {batch_size}, but only {_gib(have)} is available; lower "
            f"--tf_batch_size (0 skips that stage) or --flops_range, or free memory")
