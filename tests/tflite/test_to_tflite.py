"""TFLite variants: static 1xHxWx3 input, builtin ops only, float32 == Keras, the Flex-op guard."""

import numpy as np
import pytest
import tensorflow as tf

from keras_regnet import build, make_spec
from tests.helpers.litert_doubles import refuse_xnnpack
from tflite import report
from tflite import to_tflite

SIZE = 16


@pytest.fixture(scope="module")
def tiny_model():
    """A tiny RegNetY (grouped 3x3, SE) with logits output, taking RGB 0-255."""
    spec = make_spec([1, 1], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8,
                     stem_stride=1, name="tiny_y")
    return build(spec, input_shape=(None, None, 3), classes=10, classifier_activation=None)


@pytest.fixture(scope="module")
def images():
    from tflite.calibration import load_images

    return load_images("digits:test", SIZE, limit=24).images


def _write(tmp_path, flatbuffer, name):
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(flatbuffer)
    return str(path)


def test_float32_matches_keras_within_1e_4(tiny_model, images, tmp_path):
    path = _write(tmp_path, to_tflite.convert_model(tiny_model, SIZE, "float32"), "f32")
    expected = tf.nn.softmax(tiny_model(images, training=False)).numpy()
    np.testing.assert_allclose(report.tflite_predict(path, images, threads=1), expected, atol=1e-4)


@pytest.mark.parametrize("fmt, io_type, input_dtype", [
    ("float16", "uint8", np.float32),
    ("dynamic_int8", "uint8", np.float32),
    ("int8", "uint8", np.uint8),
    ("int8", "int8", np.int8),
])
def test_each_variant_is_static_builtin_and_runs(tiny_model, images, tmp_path, fmt, io_type, input_dtype):
    def representative():
        for image in images[:16]:
            yield [image[None]]

    flatbuffer = to_tflite.convert_model(tiny_model, SIZE, fmt, io_type, representative if fmt == "int8" else None)
    path = _write(tmp_path, flatbuffer, fmt)
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=path).get_input_details()[0]
    assert detail["shape"].tolist() == [1, SIZE, SIZE, 3]
    assert detail["shape_signature"].tolist() == [1, SIZE, SIZE, 3]
    assert detail["dtype"] == input_dtype
    ops = to_tflite.op_names(flatbuffer)
    assert "CONV_2D" in ops and not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    probs = report.tflite_predict(path, images[:4])
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=0.02)
    lat = report.latency(path, images[0], threads=2, runs=3, warmup=1)
    assert lat["mean_ms"] > 0 and lat["p90_ms"] > 0
    (both,) = report.latency_interleaved([path], images[0], threads=1, runs=2, warmup=1)
    assert both["median_ms"] > 0


def test_int8_without_representative_data_is_refused(tiny_model):
    with pytest.raises(ValueError, match="representative dataset of real images"):
        to_tflite.convert_model(tiny_model, SIZE, "int8")


class _NeedsFlex(tf.Module):
    """MatrixDeterminant has no TFLite builtin: converting it needs the Flex delegate."""

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def serve(self, x):
        return {"y": tf.linalg.det(tf.reshape(x, [1, 2, 2]))[:, None] + x}


def test_flex_op_guard_names_the_ops():
    module = _NeedsFlex()
    with pytest.raises(to_tflite.UnsupportedOpsError, match="MatrixDeterminant") as info:
        to_tflite.convert_function(module.serve, module, "float32")
    assert info.value.ops == ["MatrixDeterminant"]
    assert isinstance(info.value, ValueError)


def test_unsupported_ops_are_parsed_from_converter_messages():
    message = "...\nTF Select ops: Erf, MatrixDeterminant\nDetails:\n...\nCustom ops: Erfinv\n"
    assert to_tflite.unsupported_ops_from_message(message) == ["Erf", "MatrixDeterminant", "Erfinv"]
    assert to_tflite.unsupported_ops_from_message("some other failure") == []


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "int4"}, "unknown TFLite format 'int4'"),
    ({"fmt": "int8", "io_type": "float32"}, "must be one of"),
])
def test_bad_format_arguments(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        to_tflite.convert_model(tiny_model, SIZE, **kwargs)


def test_a_model_xnnpack_refuses_runs_on_reference_kernels_and_is_flagged(tiny_model, images, tmp_path, monkeypatch,
                                                                          caplog):
    path = _write(tmp_path, to_tflite.convert_model(tiny_model, SIZE, "float32"), "refused")
    expected = report.tflite_predict(path, images, threads=1)
    refuse_xnnpack(monkeypatch, node=7)
    with caplog.at_level("WARNING", logger="tflite"):
        np.testing.assert_allclose(report.tflite_predict(path, images, threads=1), expected, atol=1e-5)
    assert "XNNPACK cannot run" in caplog.text
    assert report.delegate(path).startswith("reference kernels (XNNPACK failed: failed to create XNNPACK")
    row = report.VariantReport("float32", path, 1, io_type="float32", delegate=report.delegate(path))
    assert "XNNPACK refused it" in report.to_markdown([row])


def test_other_allocation_errors_are_not_swallowed(tiny_model, tmp_path, monkeypatch):
    import ai_edge_litert.interpreter as litert

    path = _write(tmp_path, to_tflite.convert_model(tiny_model, SIZE, "float32"), "broken")

    class Broken(litert.Interpreter):
        def allocate_tensors(self):
            raise RuntimeError("tensor 3 has an invalid shape")

    monkeypatch.setattr(litert, "Interpreter", Broken)
    with pytest.raises(RuntimeError, match="invalid shape"):
        report.tflite_predict(path, np.zeros((1, SIZE, SIZE, 3), "float32"))
    assert report.delegate(path) == "xnnpack"
