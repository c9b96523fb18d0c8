"""ONNX export: dynamic batch, opset stated, equal to Keras under ONNX Runtime; int8 QDQ calibrated."""

import os

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

    from tests.tflite.test_fold_bn import _randomize_bn

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


def test_bounded_memory_is_undone_after_the_block(monkeypatch):
    from tf2onnx.optimizer.optimizer_base import GraphOptimizerBase

    from tflite.tf2onnx_memory import CATCH_ERRORS_ENV, bounded_memory

    original = GraphOptimizerBase.optimize
    monkeypatch.setenv(CATCH_ERRORS_ENV, "TRUE")
    with bounded_memory():
        assert os.environ[CATCH_ERRORS_ENV] == "FALSE" and GraphOptimizerBase.optimize is not original
    assert os.environ[CATCH_ERRORS_ENV] == "TRUE" and GraphOptimizerBase.optimize is original
    monkeypatch.delenv(CATCH_ERRORS_ENV)
    with pytest.raises(RuntimeError, match="inside"):
        with bounded_memory():
            raise RuntimeError("inside")
    assert CATCH_ERRORS_ENV not in os.environ and GraphOptimizerBase.optimize is original


def test_every_optimizer_pass_moves_each_node_to_a_fresh_equal_proto(exported, monkeypatch):
    """The arena fix: after each of tf2onnx's passes no node keeps its old NodeProto (whose arena holds
    the weights of every earlier pass), and the new proto carries the same content."""
    from tflite import tf2onnx_memory

    passes = []
    real = tf2onnx_memory.refresh_node_protos

    def spy(graph):
        before = {node.name: node._op for node in graph.get_nodes()}
        real(graph)
        after = {node.name: node._op for node in graph.get_nodes()}
        passes.append(before.keys() == after.keys() and all(
            after[k] is not before[k] and after[k] == before[k] for k in before))

    monkeypatch.setattr(tf2onnx_memory, "refresh_node_protos", spy)
    onnx_export.convert(fold_batch_norm(exported[0]), SIZE)
    assert len(passes) >= 12 and all(passes)  # tf2onnx runs its dozen optimizers at least once


def test_an_optimizer_that_raises_falls_back_to_tf2onnx_own_path(exported, monkeypatch, caplog, tmp_path):
    """Without tf2onnx's per-pass copies a failing optimizer raises; the export converts again the old way
    (which skips that optimizer) and the model still equals Keras."""
    from tf2onnx.optimizer.identity_optimizer import IdentityOptimizer

    def broken(self, graph):
        raise RuntimeError("identity optimizer broke")

    monkeypatch.setattr(IdentityOptimizer, "_optimize", broken)
    model, _, images = exported
    with caplog.at_level("WARNING", logger="tflite.onnx_export"):
        blob = onnx_export.convert(fold_batch_norm(model), SIZE)
    assert "identity optimizer broke" in caplog.text
    path = tmp_path / "fallback.onnx"
    path.write_bytes(blob)
    got = onnx_export.predict(str(path), images[:4], threads=1)["logits"]
    want = model(images[:4], training=False).numpy()
    assert np.max(np.abs(got - want)) <= 1e-4 * max(1.0, np.max(np.abs(want)))
