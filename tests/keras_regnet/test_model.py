"""Keras 3 builders: exact parameter counts, keras.applications arguments and errors, save/load."""

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_regnet  # noqa: E402
from keras_regnet.complexity import complexity, layer_table  # noqa: E402
from keras_regnet.zoo import ZOO  # noqa: E402
from tests.helpers.paths import REPO_ROOT


def tiny_regnet_y(**kwargs):
    return keras_regnet.RegNet(depth=3, w0=16, wa=16.0, wm=2.0, group_width=8, se_ratio=0.25,
                               name="tiny_y", **kwargs)


def trainable_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name", [n for n, e in ZOO.items() if not e.beyond_paper])
def test_built_zoo_model_has_the_reference_parameter_count(name, reference_zoo):
    entry = ZOO[name]
    model = getattr(keras_regnet, entry.function_name)(input_shape=(64, 64, 3))
    assert trainable_params(model) == reference_zoo[entry.display_name]["params"]
    # BN moving statistics are the only non-trainable weights
    assert all("moving" in w.path for w in model.non_trainable_weights)
    keras.backend.clear_session()


def test_every_layer_matches_the_analytic_layer_table():
    spec = ZOO["regnety_200mf"].spec()
    model = keras_regnet.build(spec, input_shape=(96, 64, 3))
    table = {row.name: row for row in layer_table(spec, (96, 64))}
    weighted = {layer.name: layer for layer in model.layers if layer.trainable_weights}
    assert set(weighted) == set(table)
    for name, row in table.items():
        assert trainable_params(weighted[name]) == row.params, name
        if row.kind == "conv":
            assert weighted[name].output.shape[1:] == (row.height, row.width, row.channels_out), name


def test_layer_names_are_stable_and_readable():
    names = {layer.name for layer in keras_regnet.RegNetY200MF().layers}
    for expected in ["stem_conv", "stem_bn", "s1_b1_conv_a", "s2_b1_proj_conv", "s3_b4_se_reduce",
                     "s3_b4_se_expand", "s4_b7_conv_c", "avg_pool", "predictions", "preprocessing"]:
        assert expected in names


def test_keras2_aliases_and_custom_name():
    assert keras_regnet.RegNetY006 is keras_regnet.RegNetY600MF
    assert keras_regnet.RegNetX016 is keras_regnet.RegNetX1_6GF
    model = keras_regnet.RegNetX200MF(name="my_backbone", include_top=False)
    assert model.name == "my_backbone"


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(), (None, 10)),
        (dict(include_top=False), (None, 4, 4, 64)),
        (dict(include_top=False, pooling="avg"), (None, 64)),
        (dict(include_top=False, pooling="max"), (None, 64)),
    ],
)
def test_output_shapes(kwargs, shape):
    model = tiny_regnet_y(input_shape=(64, 64, 3), classes=10, **kwargs)
    assert model.output_shape == shape
    out = model(np.zeros((1, 64, 64, 3), "float32"))
    assert out.shape[1:] == shape[1:]


def test_dynamic_input_size_and_input_tensor():
    model = tiny_regnet_y(include_top=False, pooling="avg")
    assert model.input_shape == (None, None, None, 3)
    assert model(np.zeros((2, 64, 96, 3), "float32")).shape == (2, 64)
    inp = keras.Input((32, 32, 3))
    model = tiny_regnet_y(input_tensor=inp, classes=5)
    assert model.inputs[0] is inp and model.output_shape == (None, 5)


def test_softmax_and_logits_heads():
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    probs = tiny_regnet_y(classes=7)(x)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-5)
    logits = tiny_regnet_y(classes=7, classifier_activation=None)
    assert logits.get_layer("predictions").activation.__name__ == "linear"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights="nowhere.weights.h5"), "The `weights` argument should be either `None`"),
        (dict(weights="imagenet", classes=10), "`classes` should be 1000. Received: classes=10"),
        (dict(weights="imagenet", classifier_activation="relu"), "Only `None` and `softmax` activations"),
        (dict(pooling="mean", include_top=False), "`pooling` must be one of"),
        (dict(input_shape=(16, 64, 3)), "Input size must be at least 32x32"),
        (dict(input_shape=(64, 64)), "`input_shape` must be a tuple of 3 integers"),
        (dict(classes=0), "`classes` must be a positive integer. Received: classes=0"),
    ],
)
def test_argument_errors_match_keras_applications(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        keras_regnet.RegNetX200MF(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(64.0, 64, 3)), "`input_shape` must hold integers or None"),
        (dict(input_tensor=keras.Input((8, 64, 3))), "Input size must be at least 16x16"),
        (dict(input_tensor=keras.Input((64, 3))), "`input_tensor` must be a 4D"),
    ],
)
def test_input_tensor_and_shape_checks(kwargs, message):
    """A given input_tensor gets the input_shape checks (a 1-channel one was silently broadcast)."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_regnet_y(**kwargs)
    with pytest.raises(ValueError, match="`name` must be a string. Received: name=3"):
        keras_regnet.RegNetX200MF(name=3)


def test_numpy_integer_arguments_and_user_names_are_kept():
    """classes / input_shape from numpy (configs, arrays) work; a user's name is not rewritten."""
    model = keras_regnet.RegNet(depth=3, w0=16, wa=16.0, wm=2.0, group_width=8, name="my.model",
                                input_shape=(np.int64(64), np.int64(64), 3), classes=np.int64(7))
    assert model.output_shape == (None, 7) and model.input_shape == (None, 64, 64, 3)
    assert model.name == "my.model"
    assert keras_regnet.RegNetX1_6GF(include_top=False).name == "regnetx_1_6gf"  # default unchanged
    assert keras_regnet.RegNetX200MF(include_top=False, name="x.200").name == "x.200"
    decoded = keras_regnet.decode_predictions(np.eye(1000, dtype="float32")[:1], top=np.int64(2))
    assert len(decoded[0]) == 2


def test_softmax_callable_is_allowed_with_imagenet_weights(monkeypatch):
    """keras.activations.softmax (a callable) is as valid as "softmax" with pretrained weights."""
    from keras_regnet.pretrained import load as weights_lib

    loaded = []
    monkeypatch.setattr(weights_lib, "load_into", lambda model, *a, **k: loaded.append(model.name))
    for activation in (keras.activations.softmax, None, "softmax"):
        keras_regnet.RegNetX200MF(weights="imagenet", classifier_activation=activation)
    assert len(loaded) == 3
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations"):
        keras_regnet.RegNetX200MF(weights="imagenet", classifier_activation=keras.activations.relu)


def test_other_channel_counts_without_imagenet_preprocessing():
    """As keras.applications: any channel count with weights=None when nothing assumes RGB."""
    model = tiny_regnet_y(input_shape=(32, 32, 1), include_preprocessing=False, classes=3)
    assert tuple(model.get_layer("stem_conv").kernel.shape) == (3, 3, 1, 32)
    assert model(np.zeros((2, 32, 32, 1), "float32")).shape == (2, 3)
    model = tiny_regnet_y(input_tensor=keras.Input((32, 32, 4)), include_preprocessing=False, classes=3)
    assert model.output_shape == (None, 3)


def test_mixed_precision_classifier_outputs_float32():
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("mixed_float16")
    try:
        x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
        for activation in ("softmax", None):
            model = tiny_regnet_y(input_shape=(32, 32, 3), classes=5, classifier_activation=activation)
            assert model.output.dtype == "float32"
            assert model.get_layer("s1_b1_conv_b").compute_dtype == "float16"  # the body stays mixed
            out = model(x)
            assert keras.backend.standardize_dtype(out.dtype) == "float32" and np.all(np.isfinite(out))
        backbone = tiny_regnet_y(input_shape=(32, 32, 3), include_top=False, pooling="avg")
        assert backbone.output.dtype == "float16"  # features in the compute dtype, as keras.applications
    finally:
        keras.config.set_dtype_policy(previous)


LOAD_IN_A_FRESH_PROCESS = """
import sys
{imports}
import numpy as np
model = keras.saving.load_model(sys.argv[1])
print(float(np.abs(model.predict(np.load(sys.argv[2]), verbose=0) - np.load(sys.argv[3])).max()))
"""


@pytest.mark.parametrize("imports", [
    "import keras_regnet\nimport keras",
    "import keras\nimport keras_regnet",
    # TensorFlow probes importlib.util.find_spec("keras") before it imports Keras
    "import keras_regnet\nimport tensorflow\nimport keras",
])
def test_saved_model_loads_after_import_keras_regnet_without_custom_objects(tmp_path, imports):
    """`import keras_regnet` registers the custom layers whichever is imported first."""
    model = tiny_regnet_y(input_shape=(32, 32, 3), classes=4)
    x = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    paths = [str(tmp_path / "m.keras"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    model.save(paths[0])
    np.save(paths[1], x)
    np.save(paths[2], model.predict(x, verbose=0))
    root = str(REPO_ROOT)
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS.format(imports=imports), *paths],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-5


def test_anynet_with_every_block_type_and_stem_stride_1():
    for block, se in (("v", 0.0), ("r", 0.0), ("x", 0.0), ("y", 0.25)):
        model = keras_regnet.AnyNet([1, 2], [16, 32], group_widths=8, block=block, se_ratio=se,
                                    stem_stride=1, input_shape=(32, 32, 3), classes=10)
        spec = keras_regnet.make_spec([1, 2], [16, 32], group_widths=8, block=block, se_ratio=se,
                                      stem_stride=1)
        assert trainable_params(model) == complexity(spec, 32, classes=10).params
        assert model.get_layer("s2_b2_relu").output.shape[1:3] == (8, 8)


def test_vanilla_block_has_no_shortcut():
    model = keras_regnet.AnyNet([2], [16], block="v", input_shape=(32, 32, 3))
    assert not any(layer.name.endswith("_add") for layer in model.layers)


def test_zero_init_final_gamma_option():
    model = tiny_regnet_y(zero_init_final_gamma=True)
    assert np.all(model.get_layer("s1_b1_bn_c").gamma.numpy() == 0)
    assert np.all(model.get_layer("s1_b1_bn_a").gamma.numpy() == 1)


def test_reference_initialisation():
    model = keras_regnet.RegNetY600MF()
    kernel = model.get_layer("s3_b2_conv_a").kernel.numpy()  # 1x1, 256 -> 256
    assert abs(kernel.std() - np.sqrt(2.0 / 256)) < 0.005
    dense = model.get_layer("predictions")
    assert abs(dense.kernel.numpy().std() - 0.01) < 0.001 and np.all(dense.bias.numpy() == 0)
    bn = model.get_layer("stem_bn")
    assert bn.epsilon == 1e-5 and bn.momentum == 0.9


def test_stride_two_convs_pad_symmetrically_like_the_reference():
    # centre tap only: with the reference's 1-pixel pad on every side, output (0, 0) is centred on
    # input (0, 0); Keras "same" at stride 2 pads only bottom/right and would centre it on (1, 1)
    model = keras_regnet.AnyNet([1], [8], group_widths=8, input_shape=(8, 8, 3), include_top=False,
                                include_preprocessing=False)
    stem = model.get_layer("stem_conv")
    kernel = np.zeros(stem.kernel.shape, "float32")
    kernel[1, 1, 0, 0] = 1.0
    stem.kernel.assign(kernel)
    x = np.zeros((1, 8, 8, 3), "float32")
    x[0, 0, 0, 0] = 1.0
    out = keras.Model(model.inputs, stem.output)(x).numpy()[0, :, :, 0]
    assert out.shape == (4, 4)
    assert out[0, 0] == 1.0 and out.sum() == 1.0


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_save_load_round_trip_reproduces_outputs(tmp_path, suffix):
    model = tiny_regnet_y(input_shape=(32, 32, 3), classes=4)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    # move BN statistics off their initial values so they are checked too
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 3]), epochs=1, verbose=0)
    path = str(tmp_path / f"m{suffix}")
    if suffix == ".keras":
        model.save(path)
        loaded = keras.saving.load_model(path)
    else:
        model.save_weights(path)
        loaded = tiny_regnet_y(input_shape=(32, 32, 3), classes=4, weights=path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_weights_from_a_keras_file_for_a_headless_model(tmp_path):
    full = tiny_regnet_y(input_shape=(32, 32, 3), classes=4)
    path = str(tmp_path / "full.keras")
    full.save(path)
    backbone = tiny_regnet_y(input_shape=(32, 32, 3), include_top=False, weights=path)
    np.testing.assert_array_equal(backbone.get_layer("s2_b1_conv_b").kernel.numpy(),
                                  full.get_layer("s2_b1_conv_b").kernel.numpy())


def test_mismatched_weights_file_names_the_file(tmp_path):
    path = str(tmp_path / "other.weights.h5")
    keras_regnet.AnyNet([1], [16], group_widths=8).save_weights(path)
    with pytest.raises(ValueError, match="other.weights.h5"):
        tiny_regnet_y(weights=path)


def test_decode_predictions_and_preprocess_input():
    preds = np.zeros((2, 1000), "float32")
    preds[0, 1], preds[1, 999] = 0.9, 0.8
    decoded = keras_regnet.decode_predictions(preds, top=3)
    assert decoded[0][0] == ("n01443537", "goldfish", pytest.approx(0.9))
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue") and len(decoded[1]) == 3
    with pytest.raises(ValueError, match="shape \\(samples, 1000\\)"):
        keras_regnet.decode_predictions(np.zeros((2, 10)))
    x = np.full((1, 2, 2, 3), 255.0, "float32")
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(keras_regnet.preprocess_input(x)[0, 0, 0], expected, rtol=1e-6)


def test_preprocessing_layer_equals_preprocess_input():
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    with_pre = tiny_regnet_y(input_shape=(32, 32, 3), classes=3)
    without = tiny_regnet_y(input_shape=(32, 32, 3), classes=3, include_preprocessing=False)
    without.set_weights(with_pre.get_weights())
    np.testing.assert_allclose(with_pre(x), without(keras_regnet.preprocess_input(x)), atol=1e-6)
