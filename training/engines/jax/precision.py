"""The JAX engine's dtype policy: --mixed_precision resolved for the devices JAX runs on (Keras and JAX only)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from keras_regnet.errors import ConfigError
from training.engines.jax.devices import DeviceLayout


def resolve_policy(flag: str, layout: DeviceLayout) -> str:
    """--mixed_precision on JAX: bfloat16 on TPUs and GPUs of compute capability >= 8.0, else float32."""
    if flag == "off":
        return "float32"
    if flag == "bfloat16":
        return "mixed_bfloat16"
    if flag == "float16":
        raise ConfigError("--mixed_precision=float16 needs dynamic loss scaling, which only the TensorFlow engine "
                          "has; on JAX use --mixed_precision=bfloat16 (GPUs >= 8.0, TPUs), off or auto")
    if layout.platform == "tpu":
        return "mixed_bfloat16"
    if layout.platform == "gpu":
        capabilities = [str(getattr(d, "compute_capability", "0.0")) for d in layout.mesh.devices.flat]
        if min(tuple(int(p) for p in c.split(".")[:2]) for c in capabilities) >= (8, 0):
            return "mixed_bfloat16"
    return "float32"


@contextlib.contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Build under `policy` (the global policy restored after)."""
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
