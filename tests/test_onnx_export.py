"""ONNX export: dynamic batch, opset stated, equal to Keras under ONNX Runtime; int8 QDQ calibrated."""

import onnx
import pytest

import numpy as np

from keras_regnet import build, make_spec
from tflite import onnx_export
from tflite.fold_bn import fold_batch_norm

SIZE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(Keras logits model with non-trivial BN, ONNX path, real digit images)."""
    from tflite.calibration import load_images

    from test_fold_bn import _randomize_bn

    spec = make_spec([1, 1], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8, stem_stride=1,
                     name="tiny_y")
    model = _randomize_bn(build(spec, input_shape=(None, None, 3), classes=10, classifier_activation=None))
    path = str(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    with open(path, "wb") as f:
        f.write(onnx_export.convert(fold_batch_norm(model), SIZE))
    images = load_images("digits:test", SIZE, limit=24).images
    return model, path, images


def test_signature_opset_and_dynamic_batch(exported):
    _, path, _ = exported
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == ["images"]
    assert sorted(o.name for o in proto.graph.output) == ["logits", "probabilities"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [SIZE, SIZE, 3]
    assert onnx_export.opset_of(open(path, "rb").read()) == onnx_export.OPSET == 17
    assert "BatchNormalization" not in onnx_export.op_types(open(path, "rb").read())


@pytest.mark.parametrize("batch", [1, 5, 24])
def test_onnx_runtime_equals_keras_at_any_batch(exported, batch):
    model, path, images = exported
    out = onnx_export.predict(path, images[:batch], threads=1, batch_size=batch)
    want = model(images[:batch], training=False).numpy()
    assert out["logits"].shape == (batch, 10)
    assert np.max(np.abs(out["logits"] - want)) <= 1e-4 * max(1.0, np.max(np.abs(want)))
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=1e-5)


def test_int8_qdq_is_quantized_and_tracks_the_float_model(exported, tmp_path):
    model, path, images = exported
    data = onnx_export.quantize_int8(path, str(tmp_path / "int8.onnx"), images[:16])
    ops = onnx_export.op_types(data)
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    kernels = [t for t in onnx.load_from_string(data).graph.initializer if len(t.dims) == 4]
    assert kernels and all(t.data_type == onnx.TensorProto.INT8 for t in kernels)  # every conv kernel int8
    got = onnx_export.predict(str(tmp_path / "int8.onnx"), images)["logits"]
    want = model(images, training=False).numpy()
    spread = np.max(want) - np.min(want)
    assert np.max(np.abs(got - want)) < 0.1 * spread  # int8 error, not a different function
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


def test_latency_and_bad_arguments(exported):
    _, path, images = exported
    stats = onnx_export.latency(path, images[0], threads=2, runs=3)
    assert stats["mean_ms"] > 0 and stats["p90_ms"] > 0
    with pytest.raises(ValueError, match="threads must be an integer >= 1, got 0"):
        onnx_export.session(path, 0)
    with pytest.raises(ValueError, match="runs must be >= 1, got 0"):
        onnx_export.latency(path, images[0], 1, runs=0)
    with pytest.raises(ValueError, match="at least one calibration image"):
        onnx_export.quantize_int8(path, path + ".int8", [])
    with pytest.raises(ValueError, match="opset must be an integer >= 13, got 11"):
        onnx_export.convert(exported[0], SIZE, opset=11)
