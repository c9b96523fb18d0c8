"""Precise BN (pycls BN.USE_PRECISE_STATS): moving statistics = mean of the batches' statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from training.engines.tensorflow import precise_bn
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="c1"),
        keras.layers.BatchNormalization(epsilon=1e-5, name="bn1"), keras.layers.ReLU(),
        keras.layers.Conv2D(5, 3, name="c2"), keras.layers.BatchNormalization(epsilon=1e-5, name="bn2"),
    ])


def test_moving_statistics_become_the_average_of_the_batch_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(i, 1 + i, (6, 8, 8, 3)).astype("float32") for i in range(3)]
    strategy = tf.distribute.get_strategy()
    step = precise_bn.make_statistics_step(strategy, model)
    labels = np.zeros((18,), "int64")
    iterator = iter(tf.data.Dataset.from_tensor_slices((np.concatenate(batches), labels)).batch(6))
    precise_bn.recompute(step, model, iterator, num_batches=3)

    # Independently: bn1 sees conv1's output; bn2 sees conv2(relu(bn1 in training mode)).
    conv1, conv2 = model.get_layer("c1"), model.get_layer("c2")
    means1, vars1, means2, vars2 = [], [], [], []
    for x in batches:
        a = np.asarray(conv1(x), np.float64)
        m, v = a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2))
        b = np.asarray(conv2(np.maximum((a - m) / np.sqrt(v + 1e-5), 0).astype("float32")), np.float64)
        means1.append(m), vars1.append(v), means2.append(b.mean(axis=(0, 1, 2))), vars2.append(b.var(axis=(0, 1, 2)))
    for name, mean, var in (("bn1", means1, vars1), ("bn2", means2, vars2)):
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean(mean, axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean(var, axis=0), rtol=1e-4, atol=1e-5)
    # Not the last batch's statistics alone, nor the batches pooled into one (variances differ).
    assert np.abs(model.get_layer("bn1").moving_variance.numpy() - vars1[-1]).max() > 0.1


def test_training_with_precise_bn_reports_it(tmp_path):
    from training.api import train

    result = train("regnetx_digits", epochs=1, batch_size=128, image_size=16, max_steps=2,
                   precise_bn_images=256, model_dir=str(tmp_path / "run"))
    assert result["precise_bn_images"] == 256 and result["steps"] == 2
    assert 0 <= result["top1_err"] <= 100


MIRRORED = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_regnet.layers import GhostBatchNormalization
    from training.engines.tensorflow import precise_bn

    EPS, PER_REPLICA, GHOST, BATCHES = 1e-5, 6, 3, 2
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    n = BATCHES * 2 * PER_REPLICA
    rng = np.random.default_rng(0)
    # Every image has its own offset and scale: replicas, ghost groups and batches differ in moments.
    images = (rng.normal(0, 1, (n, 8, 8, 3)) * rng.uniform(0.5, 3.0, (n, 1, 1, 1))
              + rng.normal(1.0, 2.0, (n, 1, 1, 1))).astype("float32")
    labels = np.zeros((n,), "int64")

    def norm(group, name):
        if group == PER_REPLICA:
            return keras.layers.BatchNormalization(epsilon=EPS, name=name)
        return GhostBatchNormalization(group, epsilon=EPS, name=name)

    def moments(a, group):
        """Per-channel moments of each normalization group of one replica's batch, averaged."""
        g = a.reshape(-1, group, *a.shape[1:])
        return g.mean(axis=(1, 2, 3)).mean(axis=0), g.var(axis=(1, 2, 3)).mean(axis=0)

    def normalize(a, group):
        g = a.reshape(-1, group, *a.shape[1:])
        m, v = g.mean(axis=(1, 2, 3), keepdims=True), g.var(axis=(1, 2, 3), keepdims=True)
        return ((g - m) / np.sqrt(v + EPS)).reshape(a.shape)  # fresh BN: gamma 1, beta 0

    out = {}
    for group in (PER_REPLICA, GHOST):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            model = keras.Sequential([
                keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="c1"), norm(group, "bn1"),
                keras.layers.ReLU(), keras.layers.Conv2D(5, 3, name="c2"), norm(group, "bn2")])
        step = precise_bn.make_statistics_step(strategy, model)
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2 * PER_REPLICA)
        precise_bn.recompute(step, model, iter(strategy.experimental_distribute_dataset(ds)), BATCHES)

        # numpy: each batch splits into two replica halves; bn1 normalizes each group in training mode.
        conv1, conv2 = model.get_layer("c1"), model.get_layer("c2")
        stats = {"bn1": [], "bn2": []}
        for half in np.split(images, 2 * BATCHES):
            a = np.asarray(conv1(half), np.float64)
            b = np.asarray(conv2(np.maximum(normalize(a, group), 0).astype("float32")), np.float64)
            stats["bn1"].append(moments(a, group)), stats["bn2"].append(moments(b, group))
        err, gap = 0.0, 0.0
        for name, per_half in stats.items():
            layer = model.get_layer(name)
            for variable, want in ((layer.moving_mean, np.mean([m for m, _ in per_half], axis=0)),
                                   (layer.moving_variance, np.mean([v for _, v in per_half], axis=0))):
                copies = [np.asarray(c) for c in variable.value.values]
                gap = max([gap] + [float(np.abs(c - copies[0]).max()) for c in copies])
                err = max(err, float(np.max(np.abs(copies[0] - want) / (np.abs(want) + 1e-3))))
        # How far bn1's whole-replica variances lie from the groups' (0 without ghost groups).
        whole = np.mean([moments(np.asarray(conv1(h), np.float64), PER_REPLICA)[1]
                         for h in np.split(images, 2 * BATCHES)], axis=0)
        pooled = float(np.max(np.abs(whole - np.mean([v for _, v in stats["bn1"]], axis=0)) / whole))
        out[str(group)] = {"replicas": len(model.get_layer("bn1").moving_mean.value.values),
                           "err": err, "gap": gap, "pooled_gap": pooled}
    print(json.dumps(out))
''')


def test_two_mirrored_replicas_average_the_replicas_and_ghost_groups_moments():
    """pycls averages the GPUs' statistics (compute_precise_bn_stats); --bn_batch averages its groups'."""
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", MIRRORED], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    plain, ghost = result["6"], result["3"]
    for run in (plain, ghost):
        assert run["replicas"] == 2 and run["gap"] == 0.0
        assert run["err"] < 1e-4, result  # a sum over replicas would be off by 100%
    assert ghost["pooled_gap"] > 0.1  # whole-batch moments would differ visibly from the groups'
