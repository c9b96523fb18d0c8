"""The JAX engine's persistent compilation cache (issue 34, item 4): where it lives, how it is turned off,
and that a second start of the same program loads it from the cache instead of compiling it again."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (.[jax])")

# One start of a process that compiles what a tiny train step compiles (a jitted update and its reduction).
START = textwrap.dedent("""
    import json, sys
    from training.engines.jax import compilation_cache
    flag = sys.argv[1] if len(sys.argv) > 1 else None  # None: the default folder
    stats = compilation_cache.count_compiles(compilation_cache.enable(flag))
    import jax, jax.numpy as jnp
    step = jax.jit(lambda w, x: w - 0.1 * jax.grad(lambda w: jnp.tanh(x @ w).sum())(w))
    w = step(jnp.ones((8, 8)), jnp.ones((4, 8)))
    print(json.dumps({**stats.report(), "sum": float(w.sum())}))
""")


def _start(env: dict, *flag: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", START, *flag], cwd=str(REPO_ROOT), env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _env(tmp_path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def test_the_default_folder_is_the_users_cache_folder_and_none_turns_it_off(monkeypatch, tmp_path):
    from training.engines.jax.compilation_cache import resolve_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_cache_dir(None) == str(tmp_path / "keras_regnet" / "jax_compilation_cache")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir(None) == str(tmp_path / "home" / ".cache" / "keras_regnet" / "jax_compilation_cache")
    assert resolve_cache_dir("~/cc") == str(tmp_path / "home" / "cc")
    assert resolve_cache_dir("none") is None and resolve_cache_dir("OFF") is None


def test_a_second_start_loads_every_program_from_the_cache_and_adds_nothing(tmp_path):
    env = _env(tmp_path)
    folder = tmp_path / "xdg" / "keras_regnet" / "jax_compilation_cache"  # the default: no flag given
    first = _start(env)
    entries = sorted(os.listdir(folder))
    assert first["cache_dir"] == str(folder) and first["cache_misses"] >= 1 and first["cache_hits"] == 0
    assert len(entries) >= first["cache_misses"]  # every compiled program was written, small as they are
    second = _start(env)
    assert second["cache_hits"] == first["cache_misses"] and second["cache_misses"] == 0
    assert sorted(os.listdir(folder)) == entries  # nothing compiled again, nothing added
    assert second["sum"] == first["sum"]
    off = _start(env, "none")
    assert off["cache_dir"] is None and off["cache_hits"] == off["cache_misses"] == 0
    assert sorted(os.listdir(folder)) == entries
