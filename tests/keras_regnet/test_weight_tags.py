"""timm's tagged names resolve to our zoo and weights; each weight's eval settings live in one table."""

import numpy as np
import pytest

from keras_regnet import get_entry, list_models, resolve_model
from keras_regnet.presets import DEFAULT, PRESETS, EvalSettings
from keras_regnet.pretrained.tags import canonical_weights, eval_settings


@pytest.mark.parametrize("name, zoo", [
    ("regnety_006.pycls_in1k", "regnety_600mf"),
    ("regnetx_016.pycls_in1k", "regnetx_1.6gf"),
    ("hf://timm/regnety_320.pycls_in1k", "regnety_32gf"),
    ("timm/regnetx_002.pycls_in1k", "regnetx_200mf"),
])
def test_timm_tagged_names_resolve_to_the_zoo_model(name, zoo):
    spec, entry = resolve_model(name, label="--model")
    assert entry.name == zoo and spec == get_entry(zoo).spec()


@pytest.mark.parametrize("name, message", [
    ("regnety_032.ra3_in1k", r"no weights tagged 'ra3_in1k' for regnety_032; tags we have: pycls_in1k, ra_in1k, "
                             r"tv2_in1k \(e.g. regnety_032.pycls_in1k\)"),
    ("regnetz_040.ra3_in1k", r"'regnetz_040' is not a zoo model; tagged names we have: regnetx_002.pycls_in1k"),
])
def test_other_tags_name_the_tags_we_have(name, message):
    with pytest.raises(ValueError, match=rf"--model={name!r}: {message}"):
        resolve_model(name, label="--model")


def test_every_zoo_weight_has_its_eval_settings_under_the_hub_repository_name():
    from keras_regnet.pretrained.tags import default_preset

    assert sorted(n for n in PRESETS if n.endswith(".pycls_in1k")) == sorted(
        default_preset(m).hf_repo.removeprefix("timm/") for m in list_models(beyond_paper=False))
    assert PRESETS["regnety_006.pycls_in1k"].settings == eval_settings("RegNetY-600MF")
    assert eval_settings("regnety_006.pycls_in1k").scale_size() == 256


def test_pycls_settings_differ_from_timms_pretrained_cfg_only_in_interpolation():
    # timm/models/regnet.py `_cfgpyc`: input_size (3, 224, 224), crop_pct 0.875, interpolation
    # "bicubic", IMAGENET_DEFAULT_MEAN / _STD. pycls (datasets/transforms.py `scale`) resizes with
    # cv2.INTER_LINEAR, i.e. bilinear; that is what the published errors were measured with.
    timm = {"input_size": 224, "crop_fraction": 0.875, "interpolation": "bicubic",
            "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    ours = eval_settings("regnety_006.pycls_in1k").to_dict()
    assert {k for k in timm if ours[k] != timm[k]} == {"interpolation"}
    assert ours["interpolation"] == "bilinear"


def test_the_eval_crop_follows_the_settings():
    from keras_regnet.pretrained.eval_crop import scale_and_center_crop

    image = np.random.default_rng(0).uniform(0, 255, (40, 60, 3)).astype(np.float32)
    bilinear = scale_and_center_crop(image, 16, DEFAULT).numpy()
    bicubic = scale_and_center_crop(image, 16, EvalSettings("x", interpolation="bicubic")).numpy()
    assert np.abs(bilinear - bicubic).max() > 1.0  # random pixels: the kernels differ visibly
    wide = EvalSettings("x", crop_fraction=0.5)  # shorter side 32, not 18: the crop keeps less
    assert wide.scale_size(16) == 32 and DEFAULT.scale_size(16) == 18
    assert not np.allclose(scale_and_center_crop(image, 16, wide).numpy(), bilinear, atol=1.0)
    with pytest.raises(ValueError, match="interpolation='cubic' is not one of bilinear, bicubic"):
        EvalSettings("x", interpolation="cubic")


def test_weights_accept_timm_tags_and_refuse_another_models_tag():
    spec = get_entry("regnety_600mf").spec()
    for weights in ("pycls_in1k", "regnety_006.pycls_in1k", "hf://timm/regnety_006.pycls_in1k"):
        assert canonical_weights(weights, spec) == "imagenet"
    with pytest.raises(ValueError, match="weights='regnetx_002.pycls_in1k' are RegNetX-200MF's, but the model"):
        canonical_weights("regnetx_002.pycls_in1k", spec)
    with pytest.raises(ValueError, match="no weights tagged 'tv_in1k' for regnety_006"):
        canonical_weights("regnety_006.tv_in1k", spec)
    assert canonical_weights("model.weights.h5", spec) == "model.weights.h5"  # paths pass through


def test_builders_load_the_tagged_weights_as_imagenet(tmp_path, monkeypatch):
    from keras_regnet import RegNetX200MF
    from keras_regnet.pretrained.load import resolve_weights
    from tests.helpers.standin import place_imagenet_standin

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any download attempt fails
    place_imagenet_standin(tmp_path / "keras_home")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    tagged = RegNetX200MF(weights="regnetx_002.pycls_in1k", input_shape=(32, 32, 3))
    imagenet = RegNetX200MF(weights="imagenet", input_shape=(32, 32, 3))
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(tagged.predict(x, verbose=0), imagenet.predict(x, verbose=0))
    assert resolve_weights("regnetx_002.pycls_in1k", spec=get_entry("regnetx_200mf").spec()) == "imagenet"
    with pytest.raises(ValueError, match="are RegNetY-600MF's"):
        RegNetX200MF(weights="regnety_006.pycls_in1k")
