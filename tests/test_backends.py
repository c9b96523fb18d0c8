"""Keras 3 multi-backend: the same weights give the same outputs on the JAX and PyTorch backends."""

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
