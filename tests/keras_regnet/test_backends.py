"""Keras 3 multi-backend: the same weights (and whole `.keras` files) give the same outputs on JAX and PyTorch."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_regnet  # noqa: E402

BUILD = "keras_regnet.RegNet(depth=4, w0=16, wa=12.0, wm=2.0, group_width=8, se_ratio=0.25, " \
        "input_shape=(32, 32, 3), classes=6, classifier_activation=None)"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backend_reproduces_tensorflow_outputs(tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    model = eval(BUILD)
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(f"""
        import numpy as np, keras, keras_regnet
        assert keras.backend.backend() == {backend!r}
        model = {BUILD}
        model.load_weights({weights!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, keras.ops.convert_to_numpy(model(x)))
    """)
    env = {**os.environ, "KERAS_BACKEND": backend}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x).numpy(), atol=1e-4, rtol=1e-4)


# A grouped conv (GroupedConv2D), SE, the input normalization and both of our BN layers.
SAVED = {
    "fused_bn": "keras_regnet.RegNet(depth=3, w0=16, wa=12.0, wm=2.0, group_width=8, se_ratio=0.25, "
                "input_shape=(32, 32, 3), classes=6, classifier_activation=None, name='fused')",
    "ghost_bn": "keras_regnet.RegNet(depth=3, w0=16, wa=12.0, wm=2.0, group_width=8, se_ratio=0.25, "
                "input_shape=(32, 32, 3), classes=6, classifier_activation=None, bn_batch=2, "
                "name='ghost')",
}
BN_CLASS = {"fused_bn": "FusedBatchNormalization", "ghost_bn": "GhostBatchNormalization"}


def test_a_keras_file_saved_on_tensorflow_loads_on_jax_with_the_same_outputs(tmp_path):
    """The `.keras` file names our layers; on JAX they load and compute what TensorFlow computed,
    in inference and in training mode (batch statistics: FusedBatchNormV3 on TF, Keras' BN on JAX)."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install .[jax])")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = {}
    for key, source in SAVED.items():
        model = eval(source)
        for layer in model.layers:  # non-trivial moving statistics, so loading them is checked too
            if type(layer).__name__ == BN_CLASS[key]:
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights([gamma * 1.3, beta + 0.1, rng.normal(0, 0.5, mean.shape),
                                   rng.uniform(0.5, 2, var.shape)])
        model.save(tmp_path / f"{key}.keras")
        expected[f"{key}_inference"] = model(x, training=False).numpy()
        expected[f"{key}_training"] = model(x, training=True).numpy()
    code = textwrap.dedent(f"""
        import numpy as np, keras, keras_regnet
        assert keras.backend.backend() == "jax"
        x = np.load({str(tmp_path / "x.npy")!r})
        out = {{}}
        for key, bn in {BN_CLASS!r}.items():
            model = keras.saving.load_model({str(tmp_path)!r} + f"/{{key}}.keras")
            assert type(model.get_layer("s1_b1_bn_a")).__name__ == bn
            assert type(model.get_layer("s1_b1_conv_b")).__name__ == "GroupedConv2D"
            out[key + "_inference"] = keras.ops.convert_to_numpy(model(x, training=False))
            out[key + "_training"] = keras.ops.convert_to_numpy(model(x, training=True))
        np.savez({str(tmp_path / "y.npz")!r}, **out)
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "y.npz") as got:
        assert sorted(got.files) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
