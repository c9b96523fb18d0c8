"""keras_regnet.freeze: the trainer's --freeze syntax in the library; frozen layers keep their weights
and BN statistics through `fit` while the rest moves; bn_inference=True holds every BN's statistics."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import keras_regnet  # noqa: E402
from keras_regnet import build, make_spec  # noqa: E402

SPEC = make_spec([1, 1, 1], [8, 16, 24], group_widths=8, block="y", se_ratio=0.25, stem_width=8, name="tiny3")


def _snapshot(model):
    return {w.path: np.array(w.numpy()) for w in model.weights}


def _fit(model):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 4, 16)
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def _moved(before, after, prefix):
    """{weight path: changed?} of the weights whose layer name starts with `prefix`."""
    return {k: not np.array_equal(before[k], after[k]) for k in before if k.split("/")[0].startswith(prefix)}


def _model():
    keras.utils.set_random_seed(1)
    return build(SPEC, input_shape=(32, 32, 3), classes=4, classifier_activation=None)


def test_frozen_stem_and_stage_keep_weights_and_bn_statistics_the_rest_moves():
    model = _model()
    frozen = keras_regnet.freeze(model, "stem,s1")
    assert set(frozen) == {layer.name for layer in model.layers
                           if layer.weights and layer.name.startswith(("stem", "s1_"))}
    assert {"stem_conv", "stem_bn", "s1_b1_proj_conv", "s1_b1_se_reduce"} <= set(frozen)
    before = _snapshot(model)
    _fit(model)
    after = _snapshot(model)
    for prefix in ("stem", "s1_"):
        moved = _moved(before, after, prefix)
        assert moved and not any(moved.values()), prefix  # kernels, gamma/beta and moving mean/variance
    for prefix in ("s2_", "s3_", "predictions"):
        assert all(_moved(before, after, prefix).values()), prefix  # every weight of the rest, BN statistics too
    assert not model.get_layer("stem_bn").trainable and model.get_layer("s2_b1_bn_b").trainable


def test_bn_inference_holds_every_bn_while_the_convolutions_train():
    model = _model()
    assert keras_regnet.freeze(model, "none", bn_inference=True) == [
        layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = _snapshot(model)
    _fit(model)
    after = _snapshot(model)
    bn = {k: v for k, v in _moved(before, after, "").items() if "_bn" in k.split("/")[0]}
    assert bn and not any(bn.values())
    convs = {k: v for k, v in _moved(before, after, "").items() if k.split("/")[0].endswith("_conv")}
    assert convs and all(convs.values())


@pytest.mark.parametrize("bad, message", [
    ("s4", r"'s4' is not allowed; .*\(s1\.\.s3\)"), ("stem,head", r"'head' is not allowed"), ("", "--freeze must be")])
def test_bad_freeze_strings_are_one_line_value_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        keras_regnet.freeze(_model(), bad)


def test_the_trainer_freezes_through_the_library(monkeypatch):
    from keras_regnet import freezing
    from training.core import finetune

    calls = []
    monkeypatch.setattr(finetune, "freeze_layers", lambda *a, **k: calls.append((a, k)) or ["stem_conv"])
    model = _model()
    assert finetune.apply_freeze(model, "stem", 3) == ["stem_conv"] and calls[0][0][1] == "stem"
    assert freezing.frozen_layers(model, "backbone")[-1] != "predictions"
