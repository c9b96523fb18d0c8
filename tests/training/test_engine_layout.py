"""Two engines, one shape: a backend-free core and `engines/{tensorflow,jax}` with the same module names,
and a JAX engine that trains without TensorFlow (everything but its feed, which reads tf.data)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

from tests.helpers.paths import REPO_ROOT
from tests.training.test_jax_engine import TIMEOUT, jax_env, pytestmark  # noqa: F401 (skips without jax)

TRAINING = REPO_ROOT / "training"
ENGINE_MODULES = {"start", "assembly", "devices", "feed", "step", "trainer", "checkpoint"}


def _modules(folder) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def test_both_engines_have_the_same_modules_and_no_module_is_prefixed_by_its_engine():
    tensorflow, jax = _modules(TRAINING / "engines" / "tensorflow"), _modules(TRAINING / "engines" / "jax")
    assert ENGINE_MODULES <= tensorflow and ENGINE_MODULES <= jax
    assert tensorflow - ENGINE_MODULES == {"ema", "loss_scale", "precise_bn"}  # TensorFlow-only parts
    assert jax - ENGINE_MODULES == {"precision", "compilation_cache"}  # JAX-only parts
    prefixed = [str(p.relative_to(TRAINING)) for p in TRAINING.rglob("*.py") if p.stem.startswith(("jax_", "tf_"))]
    assert prefixed == []


def _top_level_imports(path) -> set[str]:
    """Top-level packages a module imports at module level (function-level imports are lazy)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_core_imports_neither_tensorflow_nor_jax_nor_an_engine():
    offenders = {p.name: sorted(_top_level_imports(p) & {"tensorflow", "jax"})
                 for p in (TRAINING / "core").glob("*.py") if _top_level_imports(p) & {"tensorflow", "jax"}}
    assert offenders == {}
    for path in (TRAINING / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("training.engines"), f"{path.name} imports {node.module}"


# The core, and the JAX engine without its feed, imported with TensorFlow blocked; the trainer built from
# synthetic device batches by the engine's own assembly trains two steps and writes a checkpoint.
TWO_STEPS = textwrap.dedent('''
    import sys
    sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
    import importlib, pkgutil
    import numpy as np
    import training.core, training.engines.jax
    for package in (training.core, training.engines.jax):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name != "feed":
                importlib.import_module(f"{package.__name__}.{info.name}")
    from training.core.config import TrainConfig
    from training.engines.jax.assembly import build_parts
    from training.engines.jax.devices import JaxRuntime, make_layout, prefetch_to_devices
    from training.engines.jax.trainer import JaxTrainer
    from training.run import prepare

    class Source:
        num_classes, num_train, num_eval, name = 10, 64, 16, "synthetic"

    class SyntheticFeed:
        """What a JaxFeed offers the trainer, from numpy batches instead of tf.data."""
        source, global_batch, steps_per_epoch, eval_steps = Source(), 16, 4, 1

        def __init__(self, layout):
            self.layout = layout

        def _batches(self, count, seed):
            rng = np.random.default_rng(seed)
            for _ in range(count):
                yield (rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32"),
                       rng.integers(0, 10, 16).astype("int32"))

        def train(self, epoch, start, count):
            return prefetch_to_devices(self._batches(count, epoch * 100 + start), self.layout)

        def eval(self):
            return prefetch_to_devices(self._batches(1, 999), self.layout)

    cfg, spec, _ = prepare(TrainConfig(model="regnetx_digits", image_size=16, batch_size=16, epochs=1,
                                       lr=0.5, model_dir=sys.argv[1], verbose=0))
    layout = make_layout("auto")
    runtime = JaxRuntime(layout, "float32")
    trainer = JaxTrainer(cfg, runtime, build_parts(cfg, runtime, SyntheticFeed(layout), spec))
    assert trainer.restore_or_start() == 0
    before = [np.array(w) for w in trainer.state.trainable]
    batches = trainer.feed.train(0, 0, 3)
    losses = [trainer.read_step(trainer.train_step(batches)).metrics.loss_sum for _ in range(2)]
    at_two = [np.array(w) for w in trainer.state.trainable]
    # The checkpoint is written on a background thread from a host copy: hold its write until step 3 ran.
    import threading
    release, real_save = threading.Event(), trainer.checkpoint.save
    trainer.checkpoint.save = lambda step, state: release.wait(60) and real_save(step, state)
    trainer.save_checkpoint()
    pending = trainer.writes.in_flight and trainer.checkpoint.latest is None  # save_checkpoint returned first
    trainer.read_step(trainer.train_step(batches))  # step 3 donates the state's device buffers
    release.set()
    trainer.finish_writes()
    saved = np.load(trainer.checkpoint.latest)
    same = all(np.array_equal(saved[f"trainable/{i}"], w) for i, w in enumerate(at_two))
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, at_two))
    loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] == "tensorflow")
    print("RESULT", int(saved["step"]), changed, len(before), pending, same, losses, trainer.checkpoint.latest,
          loaded)
''')


def test_the_jax_engine_trains_two_steps_with_tensorflow_blocked(tmp_path):
    proc = subprocess.run([sys.executable, "-c", TWO_STEPS, str(tmp_path / "run")], cwd=str(REPO_ROOT),
                          env=jax_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    step, changed, weights, pending, same, rest = line.split(" ", 6)[1:]
    assert int(step) == 2 and int(changed) == int(weights)  # every trainable weight moved
    # The save returned while its write waited, and the file holds step 2's weights though step 3 ran since.
    assert pending == "True" and same == "True", line
    assert rest.endswith("ckpt-2.npz []"), rest  # the step-2 checkpoint, and no TensorFlow module loaded
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "ckpt-2.npz")
