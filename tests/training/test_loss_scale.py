"""float16 loss scaling under MirroredStrategy: one replica's overflow makes every replica skip.

Keras' LossScaleOptimizer decides from replica 0's unreduced gradients; here replica 1 alone sees
an inf (its half of the global batch is inf), so with that decision replica 0 would apply the
all-reduced NaN update. Runs in a subprocess with the CPU split into two logical devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)

SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_regnet.layers import GroupedConv2D
    from training.engines.tensorflow import step as steps
    from training.core.recipe import WarmupCosine, make_optimizer
    from training.engines.tensorflow.loss_scale import ReplicaAgreedLossScaleOptimizer

    keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        # groups=1: TensorFlow's CPU kernel has no float16 grouped-conv filter gradient (GPUs do)
        model = keras.Sequential([keras.Input((8, 8, 4)), GroupedConv2D(8, 3),
                                  keras.layers.BatchNormalization(), keras.layers.ReLU(),
                                  keras.layers.GlobalAveragePooling2D(),
                                  keras.layers.Dense(3, dtype="float32")])
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
        schedule = WarmupCosine(0.1, total_steps=20, warmup_steps=5)
        optimizer = ReplicaAgreedLossScaleOptimizer(make_optimizer(schedule, 0.9, True, step=step))
        optimizer.build(model.trainable_variables)
    train = steps.make_train_step(model, optimizer, 8, 3, 0.5, 0.0, xla=False)
    run = steps.distributed(strategy, train, average=model.non_trainable_variables)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (3, 8, 8, 8, 4)).astype("float32")
    images[0, 4:] = np.inf  # the first global batch: replica 1's half overflows, replica 0's is fine
    labels = rng.integers(0, 3, (3, 8)).astype("int64")
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).unbatch().batch(8)
    iterator = iter(strategy.experimental_distribute_dataset(ds))

    def replica_values(model):
        return [[np.asarray(x) for x in (getattr(v.value, "values", None) or (v.value,))]
                for v in model.trainable_variables]

    before = replica_values(model)
    scale0 = float(optimizer.dynamic_scale.numpy())
    out = {"scale0": scale0, "per_step": []}
    for i in range(3):
        run(iterator)
        step.assign_add(1)
        now = replica_values(model)
        out["per_step"].append({
            "finite": bool(all(np.isfinite(a).all() for v in now for a in v)),
            "unchanged": bool(all(np.array_equal(a, b) for v, w in zip(now, before) for a, b in zip(v, w))),
            "replica_gap": float(max(np.abs(v[1] - v[0]).max() for v in now)),
            "scale": float(optimizer.dynamic_scale.numpy()),
            "iterations": int(optimizer.iterations.numpy()),
            "lr_now": float(optimizer.learning_rate.numpy()),
            "schedule_at_step": float(schedule(int(step.numpy()))),
        })
        before = now
    print(json.dumps(out))
''')


def test_one_replica_overflow_skips_the_step_on_every_replica(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    skipped, applied, again = out["per_step"]
    # Step 1: replica 1's inf reaches the agreed finite check: nobody updates, the scale halves.
    assert skipped["finite"] and skipped["unchanged"]
    assert skipped["scale"] == out["scale0"] / 2
    # Step 2 and 3: clean batches are applied, identically on both replicas.
    for step in (applied, again):
        assert step["finite"] and not step["unchanged"] and step["replica_gap"] == 0.0
        assert step["scale"] == out["scale0"] / 2
    # The optimizer counted only the applied steps, but the LR follows the loop's step counter:
    # after k loop steps the next LR is schedule(k), skipped step included.
    assert [s["iterations"] for s in out["per_step"]] == [0, 1, 2]
    for s in out["per_step"]:
        assert abs(s["lr_now"] - s["schedule_at_step"]) < 1e-7
    assert again["lr_now"] != 0.0 and applied["lr_now"] < again["lr_now"]  # still warming up


@pytest.mark.parametrize("device, capability, policy", [
    ("TPU", None, "mixed_bfloat16"), ("GPU", (9, 0), "mixed_bfloat16"), ("GPU", (8, 0), "mixed_bfloat16"),
    ("GPU", (7, 5), "mixed_float16"), ("GPU", (7, 0), "mixed_float16"), ("GPU", (6, 1), "float32"),
    ("CPU", None, "float32"),
])
def test_auto_precision_prefers_bfloat16_and_float16_only_on_volta_turing(monkeypatch, device, capability, policy):
    from training.engines.tensorflow import devices as strategy

    monkeypatch.setattr(strategy, "_min_compute_capability", lambda: capability or (0, 0))
    assert strategy.resolve_policy("auto", device) == policy
    assert strategy.resolve_policy("off", device) == "float32"  # the paper's float32: one flag
