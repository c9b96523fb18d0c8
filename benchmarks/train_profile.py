"""Where a CPU train step's time goes: TensorFlow profiler op statistics grouped by role, float32 vs bfloat16.

    PYTHONPATH=. python benchmarks/train_profile.py [--model=regnety_600mf] [--batch=16] [--steps=2]

Traces --steps SGD train steps (benchmarks/train_step.py's step) with tf.profiler, converts the
trace to framework op statistics (TensorFlow's own `framework_op_stats` tool, no TensorBoard
needed) and sums each op's self time into roles by op type and layer name: grouped 3x3 conv
(`*_conv_b`) forward / backward, other conv forward / backward, BatchNormalization (forward
moments and normalisation, and their gradients), squeeze-excitation, optimizer, casts, other.
Self times are summed over threads (2 cores: up to twice the wall time). --policies also profiles
`mixed_bfloat16`.

Then, side by side in rounds (each round one step of every candidate, --rounds rounds), wall
seconds per train step for each policy of: keras_regnet (FusedBatchNormalization), the same network
with Keras' stock BatchNormalization (`keras_bn`, what keras_regnet used before), and timm's RegNet
on PyTorch (float32, and bfloat16 autocast for the mixed policy) when torch and timm are installed.
The last line prints the ratios.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "regnety_600mf", "Zoo model.")
flags.DEFINE_integer("batch", 16, "Batch size.")
flags.DEFINE_integer("image_size", 224, "Input size.")
flags.DEFINE_integer("steps", 2, "Profiled train steps (after 2 untraced warm-up steps).")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies to profile.")
flags.DEFINE_integer("rounds", 4, "Side-by-side rounds of timed train steps.")
flags.DEFINE_bool("profile", True, "Print the op-time profile by role.")


def role(op_type: str, name: str) -> str:
    """The part of the network (and pass) an op belongs to."""
    backward = name.startswith("gradient_tape/")
    if "SGD" in name or op_type.startswith(("ResourceApply", "AssignSub", "AssignAdd", "AssignVariable")):
        return "optimizer"
    if op_type in ("Cast",):
        return "casts"
    if "_se_" in name:
        return "squeeze-excitation" + (" backward" if backward else "")
    if "_bn" in name or "batchnorm" in name or "moments" in name:
        return "batch norm" + (" backward" if backward else "")
    if "Conv2D" in op_type:
        kind = "grouped 3x3 conv" if "_conv_b" in name else "other conv"
        return kind + (" backward" if backward else "")
    return "other" + (" backward" if backward else "")


def op_stats(xplane: str) -> list[dict]:
    """Rows of TensorFlow's framework_op_stats for one trace (type, operation, total_self_time us)."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data = plugin.xspace_to_tools_data([xplane], "framework_op_stats", {})
    data = data[0] if isinstance(data, tuple) else data
    table = json.loads(data.decode() if isinstance(data, bytes) else data)[0]
    columns = [c["id"] for c in table["cols"]]
    return [dict(zip(columns, [c.get("v") if c else None for c in row["c"]])) for row in table["rows"]]


def profile(policy: str) -> tuple[float, dict[str, float], dict[str, float]]:
    """(wall seconds per step, ms per step by role, ms per step by op type) for one dtype policy."""
    import keras
    import tensorflow as tf

    from keras_regnet import build, resolve_spec
    from train_step import keras3_step_fns

    keras.config.set_dtype_policy(policy)
    model = build(resolve_spec(FLAGS.model, label="--model"), input_shape=(FLAGS.image_size, FLAGS.image_size, 3), classes=1000)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (FLAGS.batch, FLAGS.image_size, FLAGS.image_size, 3)).astype(np.float32)
    train, _ = keras3_step_fns(model, x, rng.integers(0, 1000, FLAGS.batch))
    train(), train()
    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        train()
        times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(FLAGS.steps):
            train()
        tf.profiler.experimental.stop()
        rows = op_stats(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0])
    keras.config.set_dtype_policy("float32")
    by_role: dict[str, float] = collections.Counter()
    by_type: dict[str, float] = collections.Counter()
    for row in rows:
        if row["type"] == "IDLE":
            continue
        ms = row["total_self_time"] / 1e3 / FLAGS.steps
        by_role[role(row["type"], row["operation"])] += ms
        by_type[row["type"]] += ms
    return float(np.median(times)), dict(by_role), dict(by_type)


def keras_bn_clone(model: object) -> object:
    """The same network with Keras' stock BatchNormalization in place of FusedBatchNormalization."""
    import keras

    from keras_regnet.layers import FusedBatchNormalization

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        cls = keras.layers.BatchNormalization if isinstance(layer, FusedBatchNormalization) else layer.__class__
        return cls.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=swap)


def step_candidates(policy: str) -> dict[str, object]:
    """name -> callable running one train step, for one dtype policy."""
    import keras

    from keras_regnet import build, resolve_spec
    from train_step import keras3_step_fns

    rng = np.random.default_rng(0)
    size, batch = FLAGS.image_size, FLAGS.batch
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 1000, batch)
    keras.config.set_dtype_policy(policy)
    try:
        model = build(resolve_spec(FLAGS.model, label="--model"), input_shape=(size, size, 3), classes=1000)
        found = {f"keras_regnet {policy}": keras3_step_fns(model, x, y)[0],
                 f"keras_bn {policy}": keras3_step_fns(keras_bn_clone(model), x, y)[0]}
    finally:
        keras.config.set_dtype_policy("float32")
    from peers import omp_wait_policy, timm_model

    peer = timm_model(FLAGS.model)
    if not isinstance(peer, str):
        torch, net = peer
        print(f"timm: torch {torch.__version__}, {omp_wait_policy()}")
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)
        bf16 = policy == "mixed_bfloat16"

        def timm_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(net(xt), yt)
            loss.backward()
            optimizer.step()

        found[f"timm {'bf16 autocast' if bf16 else 'float32'}"] = timm_step
    return found


def side_by_side() -> dict[str, list[float]]:
    """name -> per-round wall seconds of one train step, all candidates interleaved."""
    found: dict[str, object] = {}
    for policy in FLAGS.policies:
        found.update(step_candidates(policy))
    for fn in found.values():
        fn(), fn()
    times: dict[str, list[float]] = {name: [] for name in found}
    for _ in range(FLAGS.rounds):
        for name, fn in found.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str]) -> None:
    del argv
    times = side_by_side()
    print(f"\n{FLAGS.model}, batch {FLAGS.batch} at {FLAGS.image_size}: seconds per train step, median (range) "
          f"of {FLAGS.rounds} interleaved rounds")
    med = {name: float(np.median(t)) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:<28} {med[name]:.3f} ({min(t):.3f}-{max(t):.3f})")
    ratios = []
    for policy in FLAGS.policies:
        ours = med[f"keras_regnet {policy}"]
        ratios.append(f"{policy}: keras_bn/fused {med[f'keras_bn {policy}'] / ours:.2f}x")
        peer = "timm bf16 autocast" if policy == "mixed_bfloat16" else "timm float32"
        if peer in med:
            ratios.append(f"{policy}: {peer}/keras_regnet {med[peer] / ours:.2f}x")
    if "keras_regnet mixed_bfloat16" in med and "keras_regnet float32" in med:
        gain = med["keras_regnet float32"] / med["keras_regnet mixed_bfloat16"]
        ratios.append(f"keras_regnet float32/mixed_bfloat16 {gain:.2f}x")
    if not FLAGS.profile:
        print("ratios (> 1: keras_regnet faster): " + "; ".join(ratios))
        return
    results = {policy: profile(policy) for policy in FLAGS.policies}
    print(f"\n{FLAGS.model}, batch {FLAGS.batch} at {FLAGS.image_size}: op self time per step (ms, summed "
          "over threads) by role")
    roles = sorted({r for _, by_role, _ in results.values() for r in by_role},
                   key=lambda r: -results[FLAGS.policies[0]][1].get(r, 0.0))
    print(f"  {'role':<28}" + "".join(f"{p:>18}" for p in FLAGS.policies))
    for r in roles:
        print(f"  {r:<28}" + "".join(f"{results[p][1].get(r, 0.0):18.1f}" for p in FLAGS.policies))
    for policy, (_, _, by_type) in results.items():
        top = sorted(by_type.items(), key=lambda kv: -kv[1])[:12]
        print(f"top op types ({policy}): " + ", ".join(f"{k} {v:.0f}" for k, v in top))
    print("ratios (> 1: keras_regnet faster): " + "; ".join(ratios))


if __name__ == "__main__":
    app.run(main)
