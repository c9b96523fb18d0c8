"""Which engine trains a run (TensorFlow or JAX), chosen before Keras is imported, and its flag checks.

Keras fixes its backend when it is first imported (KERAS_BACKEND). `select_backend(argv)` reads
`--engine` from the command line and sets the backend to match, so `python -m training.main
--engine=jax` and `KERAS_BACKEND=jax python -m training.main` are the same run; `engine_of(cfg)`
then says which engine a config trains with.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

from keras_regnet.errors import ConfigError

BACKEND_OF_ENGINE = {"tensorflow": "tensorflow", "jax": "jax"}
JAX_INSTALL = 'pip install "keras-regnet[jax]"'


def engine_in_argv(argv: Sequence[str]) -> str | None:
    """The value of --engine in `argv` (`--engine=X` or `--engine X`), or None."""
    for i, arg in enumerate(argv):
        if arg.startswith("--engine="):
            return arg.split("=", 1)[1]
        if arg == "--engine" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def select_backend(argv: Sequence[str], environ: Any = os.environ) -> str | None:
    """Set KERAS_BACKEND from --engine before Keras is imported; an error line if that is impossible.

    Returns the message to print and exit with (None when all is well): an --engine whose backend
    Keras already runs on is fine, another one cannot be switched to, and the JAX engine needs jax.
    """
    engine = engine_in_argv(argv)
    backend = BACKEND_OF_ENGINE.get(engine or "")
    if backend is None:
        backend = environ.get("KERAS_BACKEND") if engine in (None, "auto") else None
        if backend is None:
            return None  # flag validation names a bad --engine value
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            return (f"--engine={engine} needs Keras' {backend} backend but Keras was already imported with "
                    f"{keras.backend.backend()!r}; set KERAS_BACKEND={backend} before starting Python")
        return None
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        how = f"--engine={engine}" if engine not in (None, "auto") else "KERAS_BACKEND=jax"
        return f"{how} trains with the JAX engine, but jax is not installed: {JAX_INSTALL}"
    environ["KERAS_BACKEND"] = backend
    return None


def engine_of(cfg: Any) -> str:
    """'jax' or 'tensorflow': --engine, or with --engine=auto the backend Keras runs on."""
    if cfg.engine != "auto":
        return cfg.engine
    import keras

    return "jax" if keras.backend.backend() == "jax" else "tensorflow"


def check_engine(cfg: Any) -> None:
    """ConfigError naming the flag for an engine that cannot run here or flags it does not take."""
    if cfg.engine not in ("auto", *BACKEND_OF_ENGINE):
        raise ConfigError(f"--engine must be one of auto, tensorflow, jax; got {cfg.engine!r}")
    engine = engine_of(cfg)
    if cfg.engine != "auto":
        import keras

        if keras.backend.backend() != BACKEND_OF_ENGINE[engine]:
            raise ConfigError(f"--engine={engine} needs Keras' {engine} backend, but Keras runs on "
                              f"{keras.backend.backend()!r}; set KERAS_BACKEND={engine} before Keras is imported "
                              f"(python -m training.main does this for --engine)")
    jax_only = [name for name in ("coordinator_address", "num_processes", "process_id")
                if getattr(cfg, name) is not None]
    if engine == "tensorflow":
        if jax_only:
            raise ConfigError(f"--{jax_only[0]} is a JAX-engine flag (jax.distributed); the TensorFlow engine "
                              f"reads its cluster from TF_CONFIG. Drop it or pass --engine=jax")
        return
    check_jax_flags(cfg)


def check_jax_flags(cfg: Any) -> None:
    """ConfigError naming the flag for TensorFlow-engine options given to the JAX engine, or bad process flags."""
    from keras_regnet.errors import ConfigError

    if cfg.strategy in ("multi_worker_mirrored", "tpu") or cfg.tpu:
        raise ConfigError(f"--strategy={cfg.strategy} is a tf.distribute strategy; the JAX engine spreads over "
                          f"all devices of all processes (--coordinator_address/--num_processes/--process_id "
                          f"for several hosts, TPU VMs detected by JAX): use --strategy=auto|mirrored|one_device")
    if cfg.xla == "off":
        raise ConfigError("--xla=off is a TensorFlow-engine option: the JAX engine always compiles its step "
                          "with XLA; drop --xla or pass --engine=tensorflow")
    for name in ("num_processes", "process_id"):
        value = getattr(cfg, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"--{name} must be an integer >= 0, got {value!r}")
    if cfg.num_processes is not None and cfg.process_id is not None and cfg.process_id >= cfg.num_processes:
        raise ConfigError(f"--process_id={cfg.process_id} must be below --num_processes={cfg.num_processes}")
