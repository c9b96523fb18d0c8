"""The first weights="imagenet" load builds one model (the caller's): the reference checkpoint is
converted to arrays keyed by layer name with numpy and cached; no twin model, no .weights.h5 detour."""

import os

import keras
import numpy as np
import pytest

from tests.helpers.standin import MODEL, eq, place_imagenet_standin


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any download attempt fails
    return tmp_path / "keras_home"


@pytest.fixture
def count_builds(monkeypatch):
    """Count RegNet models built (every build makes one stem) and refuse whole-model loads."""
    from keras_regnet import blocks

    built = []
    stem = blocks.stem
    monkeypatch.setattr(blocks, "stem", lambda *a, **k: (built.append(a[1].name), stem(*a, **k))[1])

    def no_load(*args, **kwargs):
        raise AssertionError("the ImageNet loader loaded a whole Keras model")

    monkeypatch.setattr(keras.saving, "load_model", no_load)
    return built


def test_first_imagenet_load_builds_only_the_callers_model(keras_home, count_builds):
    from keras_regnet import RegNetX200MF
    from keras_regnet.pretrained.tags import default_preset
    from keras_regnet.pretrained.cache import cached_paths

    place_imagenet_standin(keras_home)
    model = RegNetX200MF(weights="imagenet", classifier_activation=None, include_preprocessing=False)
    assert count_builds == [MODEL]
    _, converted = cached_paths(default_preset(MODEL))
    assert converted.endswith(".layers.npz") and os.path.isfile(converted)
    meta, arrays = eq.load_case(MODEL)
    out = meta["outputs"][0]
    assert np.abs(np.asarray(model(eq.case_inputs(meta, out))) - arrays[out["key"]]).max() <= eq.TOLERANCE
    # Later loads read the cached arrays: again one model, here a headless one.
    RegNetX200MF(weights="imagenet", include_top=False)
    assert count_builds == [MODEL, MODEL]


def test_cached_arrays_are_keyed_by_layer_name(keras_home):
    from keras_regnet.pretrained.tags import default_preset
    from keras_regnet.pretrained.cache import imagenet_arrays, read_layer_arrays, cached_paths

    place_imagenet_standin(keras_home)
    arrays = imagenet_arrays(MODEL)
    cached = read_layer_arrays(cached_paths(default_preset(MODEL))[1])
    assert sorted(cached) == sorted(arrays)
    assert [a.shape for a in cached["s1_b1_bn_a"]] == [(24,)] * 4  # gamma, beta, mean, variance
    assert cached["stem_conv"][0].shape == (3, 3, 3, 32) and cached["predictions"][0].shape == (368, 1000)
    for name in arrays:
        for ours, theirs in zip(arrays[name], cached[name]):
            np.testing.assert_array_equal(ours, theirs)


def test_a_corrupt_array_cache_names_the_file(keras_home):
    from keras_regnet import RegNetX200MF
    from keras_regnet.pretrained.tags import default_preset
    from keras_regnet.pretrained.cache import cached_paths

    _, converted = cached_paths(default_preset(MODEL))
    os.makedirs(os.path.dirname(converted))
    with open(converted, "wb") as f:
        f.write(b"not a zip")
    with pytest.raises(ValueError, match="are unreadable .*delete the file"):
        RegNetX200MF(weights="imagenet")


def test_the_converter_writes_the_imagenet_weights_as_a_keras_file(keras_home, tmp_path):
    from keras_regnet import RegNetX200MF
    from keras_regnet.checkpoint_converter import convert_checkpoint

    place_imagenet_standin(keras_home)
    out = convert_checkpoint("RegNetX002", "imagenet", tmp_path / "x200.weights.h5")
    model = RegNetX200MF(weights=out, include_preprocessing=False, classifier_activation=None)
    meta, arrays = eq.load_case(MODEL)
    case = meta["outputs"][0]
    assert np.abs(np.asarray(model(eq.case_inputs(meta, case))) - arrays[case["key"]]).max() <= eq.TOLERANCE
