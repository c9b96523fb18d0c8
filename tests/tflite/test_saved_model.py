"""SavedModel for TF Serving: both signatures agree with Keras, no XLA-only functions, CLI-runnable."""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_regnet import build, make_spec
from tflite import saved_model
from keras_regnet.pretrained.eval_crop import scale_and_center_crop

SIZE = 16


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(Keras logits model, version dir, loaded SavedModel, real test images)."""
    from tflite.calibration import load_images

    spec = make_spec([1, 1], [16, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8,
                     stem_stride=1, name="tiny_y")
    model = build(spec, input_shape=(None, None, 3), classes=10, classifier_activation=None)
    directory = str(tmp_path_factory.mktemp("serving") / "tiny_y" / "1")
    signatures = saved_model.save(model, directory, SIZE, top_k=3)
    assert signatures == ["serve_image_bytes", "serving_default"]
    images = load_images("digits:test", SIZE, limit=6).images
    return model, directory, tf.saved_model.load(directory), images


def test_serving_default_agrees_with_keras(exported):
    model, _, loaded, images = exported
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    logits = model(images, training=False).numpy()
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].numpy(), tf.nn.softmax(logits).numpy(), atol=1e-6)
    assert out["top_k_classes"].shape == (6, 3) and out["top_k_classes"].dtype == tf.int32
    np.testing.assert_array_equal(out["top_k_classes"].numpy()[:, 0], np.argmax(logits, -1))
    spec = loaded.signatures["serving_default"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, SIZE, SIZE, 3]


def test_serve_image_bytes_decodes_crops_and_agrees_with_keras(exported):
    model, _, loaded, images = exported
    wide = np.concatenate([images, images[:, :, :8]], axis=2)  # 16 x 24: the centre crop matters
    encoded = [saved_model.encode_png(image) for image in wide]
    out = loaded.signatures["serve_image_bytes"](image_bytes=tf.constant(encoded))
    expected_inputs = np.stack([scale_and_center_crop(np.round(img), SIZE).numpy() for img in wide])
    np.testing.assert_allclose(out["logits"].numpy(), model(expected_inputs, training=False).numpy(), atol=1e-4)


def test_no_xla_only_functions_and_each_variable_stored_once(exported):
    model, directory, _, _ = exported
    saved_model.check_graph(directory)  # raises on _XlaMustCompile or unknown ops
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        assert b"_XlaMustCompile" not in f.read()
    stored = [shape for name, shape in tf.train.list_variables(os.path.join(directory, "variables", "variables"))
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    from tflite.fold_bn import fold_batch_norm

    served = fold_batch_norm(model).weights  # BN folded: one bias per conv instead of 4 BN vectors
    assert len(stored) == len(served)  # keras.Model.export stores every variable twice
    assert sum(int(np.prod(s)) for s in stored) == sum(int(np.prod(w.shape)) for w in served)


def test_check_graph_rejects_xla_only_functions(tmp_path):
    class Jit(tf.Module):
        @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None], tf.float32)])
        def f(self, x):
            return {"y": x * 2.0}

    module = Jit()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.f.get_concrete_function()})
    with pytest.raises(ValueError, match="XLA-only"):
        saved_model.check_graph(str(tmp_path))


def test_saved_model_cli_runs_serving_default(exported, tmp_path):
    model, directory, _, images = exported
    np.save(tmp_path / "x.npy", images[:2])
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "run", "--dir", directory, "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"images={tmp_path / 'x.npy'}", "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    logits = np.load(tmp_path / "out" / "logits.npy")
    np.testing.assert_allclose(logits, model(images[:2], training=False).numpy(), atol=1e-5)


def test_rest_request_body_is_what_tf_serving_accepts(exported, tmp_path):
    model, _, loaded, images = exported
    body = saved_model.write_rest_request(str(tmp_path / "rest.json"), images, count=2)
    assert json.loads((tmp_path / "rest.json").read_text()) == body
    assert body["signature_name"] == "serve_image_bytes" and len(body["instances"]) == 2
    raw = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
    out = loaded.signatures["serve_image_bytes"](image_bytes=tf.constant(raw))
    expected = model(np.stack([scale_and_center_crop(np.round(i), SIZE) for i in images[:2]]), training=False)
    np.testing.assert_allclose(out["logits"].numpy(), expected.numpy(), atol=1e-4)


def _op_types(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    return {node.op for function in graph.library.function for node in function.node_def}


def test_serving_graph_has_bn_folded_into_the_convs(exported, tmp_path):
    """BN inference math (Rsqrt of the moving variance) is gone; the unfolded graph still has it."""
    model, directory, _, _ = exported
    ops = _op_types(directory)
    assert "Conv2D" in ops and "Rsqrt" not in ops and "FusedBatchNormV3" not in ops
    unfolded = str(tmp_path / "unfolded")
    saved_model.save(model, unfolded, SIZE, fold_bn=False)
    assert "Rsqrt" in _op_types(unfolded)


def test_batch_latency_times_each_function_at_each_batch(exported):
    _, _, loaded, images = exported
    serve = loaded.signatures["serving_default"]
    timed = saved_model.batch_latency({"a": serve, "b": serve}, images, batches=(1, 8), runs=3)
    assert set(timed) == {"a", "b"} and set(timed["a"]) == {"1", "8"}
    assert all(s["min_ms"] > 0 and s["min_ms"] <= s["median_ms"] for t in timed.values() for s in t.values())
    with pytest.raises(ValueError, match="runs must be >= 1, got 0"):
        saved_model.batch_latency({"a": serve}, images, runs=0)
