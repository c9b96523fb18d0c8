"""The JAX engine's persistent XLA compilation cache, and the compile seconds a run spent.

`enable(flag)` points JAX's persistent cache at --compilation_cache_dir (default: the user's cache
folder, $XDG_CACHE_HOME or ~/.cache, then keras_regnet/jax_compilation_cache; `none` disables it)
before the first compile, caching every program whatever its compile time or size, so a restarted,
resumed or repeated run loads its compiled step instead of recompiling it. `CompileStats` sums the
seconds JAX spent in its backend compile (a cache hit counts its load time) and counts hits and
misses, from JAX's monitoring events; the trainer reports them in metrics.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax
from jax import monitoring

DISABLED = ("none", "off", "")
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch.BACKEND_COMPILE_EVENT
_HIT_EVENT, _MISS_EVENT = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/cache_misses"


def default_cache_dir() -> str:
    """$XDG_CACHE_HOME/keras_regnet/jax_compilation_cache (~/.cache/... when XDG_CACHE_HOME is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "keras_regnet", "jax_compilation_cache")


def resolve_cache_dir(flag: str | None) -> str | None:
    """The cache folder a --compilation_cache_dir value names: None when it disables the cache."""
    if flag is None:
        return default_cache_dir()
    if flag.strip().lower() in DISABLED:
        return None
    return os.path.expanduser(flag)


def enable(flag: str | None) -> str | None:
    """Set JAX's persistent compilation cache from --compilation_cache_dir (before the first compile).

    Every program is cached (no minimum compile time or entry size: the small CPU programs of a short
    run too). Returns the folder, or None when disabled.
    """
    path = resolve_cache_dir(flag)
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        _reopen()
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _reopen()
    return path


def _reopen() -> None:
    """Make JAX open the cache again at its next compile (a process that compiled before reads the new folder)."""
    from jax._src import compilation_cache as jax_cache

    jax_cache.reset_cache()


_counting: list[CompileStats] = []  # the one CompileStats listening in this process


def count_compiles(cache_dir: str | None) -> CompileStats:
    """A CompileStats counting from now on (the previous run's in this process stops counting)."""
    while _counting:
        _counting.pop().stop()
    stats = CompileStats(cache_dir).listen()
    _counting.append(stats)
    return stats


@dataclass
class CompileStats:
    """Seconds in XLA compiles (or cache loads) and persistent-cache hits/misses since `listen()`."""

    cache_dir: str | None = None
    compile_s: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0

    def listen(self) -> CompileStats:
        """Start counting (JAX's monitoring listeners are process-wide; stop with `stop()`)."""
        monitoring.register_event_duration_secs_listener(self._on_duration)
        monitoring.register_event_listener(self._on_event)
        return self

    def stop(self) -> None:
        monitoring.unregister_event_duration_listener(self._on_duration)
        monitoring.unregister_event_listener(self._on_event)

    def _on_duration(self, event: str, duration: float, **kw: object) -> None:
        if event == _COMPILE_EVENT:
            self.compile_s += duration

    def _on_event(self, event: str, **kw: object) -> None:
        if event == _HIT_EVENT:
            self.cache_hits += 1
        elif event == _MISS_EVENT:
            self.cache_misses += 1

    def report(self) -> dict[str, object]:
        """What metrics.json records under "compilation"."""
        return {"cache_dir": self.cache_dir, "compile_s": round(self.compile_s, 3),
                "cache_hits": self.cache_hits, "cache_misses": self.cache_misses}
