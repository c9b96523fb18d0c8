"""The tf_keras twin: same layer names and weights as the Keras 3 model, same outputs."""

import os

import numpy as np
import pytest

from keras_regnet import build, make_spec


@pytest.mark.parametrize("block, se_ratio", [("y", 0.25), ("x", 0.0), ("r", 0.0)])
def test_twin_has_the_same_weighted_layers_and_outputs(block, se_ratio):
    from tflite.tf_keras_twin import build_twin, copy_weights

    spec = make_spec([1, 2], [16, 32], group_widths=8, block=block, se_ratio=se_ratio, stem_width=8,
                     stem_stride=2, name=f"tiny_{block}")
    model = build(spec, input_shape=(None, None, 3), classes=7, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial BN statistics, so copying them is checked too
        if "bn" in layer.name:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, rng.normal(size=mean.shape), rng.uniform(0.5, 2, var.shape)])
    twin = build_twin(spec, 32, 7, classifier_activation=None)
    assert os.environ.get("TF_USE_LEGACY_KERAS") in (None, "0")  # tf_keras alone does not flip tf.keras
    keras3 = {layer.name for layer in model.layers if layer.weights}
    # The twin's input normalization is a frozen 1x1 depthwise conv (so TFMOT quantizes it).
    assert {layer.name for layer in twin.layers if layer.weights} == keras3 | {"preprocessing"}
    assert copy_weights(model, twin) == len(keras3)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(twin(images, training=False).numpy(), model(images, training=False).numpy(),
                               atol=1e-4, rtol=1e-4)


def test_copy_weights_names_a_missing_layer():
    from tflite.tf_keras_twin import build_twin, copy_weights

    small = build(make_spec([1], [16], group_widths=8, stem_width=8, name="a"), input_shape=(None, None, 3), classes=3)
    twin = build_twin(make_spec([2], [16], group_widths=8, stem_width=8, name="b"), 32, 3)
    with pytest.raises(ValueError, match="no layer 's1_b2_conv_a'"):
        copy_weights(small, twin)


def test_qat_warns_above_the_mobile_regime(caplog):
    from keras_regnet import get_entry
    from tflite.qat import check_mobile_regime

    assert check_mobile_regime(get_entry("regnetx_800mf").spec())
    with caplog.at_level("WARNING", logger="tflite"):
        assert not check_mobile_regime(get_entry("regnety_1.6gf").spec())
    assert "mobile regime" in caplog.text and "Proceeding anyway" in caplog.text


def _graph(model) -> list[tuple[str, list[str]]]:
    """(layer name, names of the layers feeding it) of a Keras 3 or tf_keras functional model."""
    out = []
    for layer in model.layers:
        node = layer._inbound_nodes[0]
        if hasattr(node, "inbound_layers"):  # tf_keras
            inbound = node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]
            out.append((layer.name, [other.name for other in inbound]))
        else:
            out.append((layer.name, [t._keras_history[0].name for t in node.input_tensors]))
    return out


@pytest.mark.parametrize("block", ["v", "r", "x", "y"])
def test_twin_is_built_by_the_same_block_code_for_every_block_type(block):
    """Vanilla included: the twin and the Keras 3 model are one graph and give the same outputs."""
    from tflite.tf_keras_twin import build_twin, copy_weights

    spec = make_spec([1, 2], [16, 32], group_widths=8, block=block, se_ratio=0.25 if block == "y" else 0.0,
                     stem_width=8, name=f"tiny_{block}")
    model = build(spec, input_shape=(32, 32, 3), classes=5, classifier_activation=None)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if "bn" in layer.name:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 0.7, beta - 0.2, rng.normal(size=mean.shape), rng.uniform(0.5, 2, var.shape)])
    twin = build_twin(spec, 32, 5, classifier_activation=None)
    assert _graph(twin) == _graph(model)  # the twin's preprocessing is a depthwise conv, same name
    assert copy_weights(model, twin) == sum(1 for layer in model.layers if layer.weights)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(twin(images, training=False).numpy(), model(images, training=False).numpy(),
                               atol=1e-4, rtol=1e-4)
