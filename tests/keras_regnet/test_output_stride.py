"""output_stride=8|16|32: stride 1 and doubling dilation past the output stride (timm's rule), same
variables (pretrained weights load unchanged), true pyramid strides, the dilated complexity, timm's
dilated features (committed golden, and live where torch and timm are installed), exports that run."""


import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from keras_regnet import build, complexity, layer_records, make_spec  # noqa: E402
from keras_regnet.zoo import ZOO  # noqa: E402
from tests.golden import equivalence as eq  # noqa: E402
from tests.golden.synthetic import synthetic_images, synthetic_state  # noqa: E402

# Four stages, stem stride 2: total stride 32 like the zoo, small enough for 64 px inputs.
TINY = make_spec([1, 1, 2, 2], [8, 16, 24, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8,
                 name="tiny4")
GOLDEN = "regnety_600mf_os16"
RELATIVE_TOLERANCE = 1e-4


def timm_stage_args(num_stages, output_stride, default_stride=2):
    """timm's rule, transcribed from timm/models/regnet.py (`RegNet._get_stage_args`, `RegStage`):
    the network stride starts at the stem's 2; a stage whose input is already at `output_stride`
    gets stride 1 and multiplies the dilation by the default stride; a stage's first block uses
    1 if the stage dilation is 1 or 2, else 2, its other blocks the stage dilation.
    Returns [(stride, dilation, first block dilation)] per stage."""
    out, net_stride, dilation = [], 2, 1
    for _ in range(num_stages):
        if net_stride >= output_stride:
            dilation *= default_stride
            stride = 1
        else:
            stride = default_stride
            net_stride *= stride
        out.append((stride, dilation, 1 if dilation in (1, 2) else 2))
    return out


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("model", ["regnetx_200mf", "regnety_600mf", "regnety_32gf"])
def test_stage_geometry_is_timms_rule(model, output_stride):
    spec = ZOO[model].spec()
    ours = [(g.stride, g.dilation, g.first_dilation) for g in layer_records.stage_geometry(spec, output_stride)]
    assert ours == timm_stage_args(len(spec.stages), output_stride)
    assert layer_records.effective_total_stride(spec, output_stride) == output_stride


def test_block_records_dilate_the_3x3_convs_and_keep_the_projection():
    records = {r.name: r for r in layer_records.network(TINY, output_stride=8)}
    assert [records[f"s{s}_b1_conv_b"].stride for s in (1, 2, 3, 4)] == [2, 2, 1, 1]
    assert [records[n].dilation for n in ("s3_b1_conv_b", "s3_b2_conv_b", "s4_b1_conv_b", "s4_b2_conv_b")] == \
        [1, 2, 2, 4]
    assert all(records[n].dilation == 1 for n in records if not n.endswith("conv_b"))  # 1x1s never dilate
    plain = {r.name: r for r in layer_records.network(TINY)}
    assert set(records) == set(plain)  # the same layers: s3_b1_proj_conv stays though its stride is 1
    assert records["s3_b1_proj_conv"].stride == 1 and plain["s3_b1_proj_conv"].stride == 2


@pytest.mark.parametrize("block", ["v", "r"])
def test_vanilla_and_residual_blocks_dilate_both_3x3_convs(block):
    spec = make_spec([1, 2], [8, 16], block=block, stem_width=8, stem_stride=1)
    records = {r.name: r for r in layer_records.network(spec, output_stride=8)}
    assert (records["s2_b1_conv_a"].stride, records["s2_b1_conv_a"].dilation) == (2, 1)  # net stride 2 < 8
    # stem 2, s1 -> 4, s2 -> 8: the third stage is past the output stride
    spec = make_spec([1, 2, 2], [8, 8, 8], block=block, stem_width=8, stem_stride=2)
    records = {r.name: r for r in layer_records.network(spec, output_stride=8)}
    got = [(records[f"s3_b{b}_conv_{c}"].stride, records[f"s3_b{b}_conv_{c}"].dilation)
           for b in (1, 2) for c in "ab"]
    assert got == [(1, 1), (1, 2), (1, 2), (1, 2)]
    assert ("s3_b1_proj_conv" in records) == (block == "r")  # equal widths, yet dilations differ: project


@pytest.mark.parametrize("output_stride, levels", [
    (32, {"P1": 32, "P2": 16, "P3": 8, "P4": 4, "P5": 2}),
    (16, {"P1": 32, "P2": 16, "P3": 8, "P4": 4}),
    (8, {"P1": 32, "P2": 16, "P3": 8})])
def test_pyramid_outputs_report_the_true_strides(output_stride, levels):
    model = build(TINY, include_top=False, input_shape=(64, 64, 3), output_stride=output_stride)
    assert {k: v.shape[1] for k, v in model.pyramid_outputs.items()} == levels
    assert model.output_shape == (None, 64 // output_stride, 64 // output_stride, 32)
    assert model.pyramid_outputs[max(levels)] is model.output  # the last stage names the deepest level


@pytest.mark.parametrize("output_stride", [16, 8])
def test_same_variables_and_weights_load_unchanged(output_stride, tmp_path):
    plain = build(TINY, input_shape=(64, 64, 3), classes=5)
    dilated = build(TINY, input_shape=(64, 64, 3), classes=5, output_stride=output_stride)
    assert [(w.path, w.shape) for w in plain.weights] == [(w.path, w.shape) for w in dilated.weights]
    path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    loaded = build(TINY, input_shape=(64, 64, 3), classes=5, weights=path, output_stride=output_stride)
    for a, b in zip(plain.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    assert not np.allclose(plain(x), loaded(x), rtol=0, atol=1e-6)  # the same weights, another function (softmax near uniform: compare tightly)


@pytest.mark.parametrize("output_stride", [None, 16, 8])
def test_complexity_counts_the_dilated_network(output_stride):
    model = build(TINY, input_shape=(64, 64, 3), classes=5, output_stride=output_stride)
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            out_h, out_w = layer.output.shape[1:3]
            flops += int(np.prod(layer.kernel.shape)) * out_h * out_w + (layer.filters if layer.use_bias else 0) * out_h * out_w
        elif isinstance(layer, keras.layers.Dense):
            flops += int(np.prod(layer.kernel.shape)) + layer.units
    assert complexity(TINY, 64, classes=5, output_stride=output_stride).flops == flops
    if output_stride:
        assert flops > complexity(TINY, 64, classes=5).flops  # later stages run on bigger maps


@pytest.mark.parametrize("bad", [4, 64, "16", 16.5, True])
def test_bad_output_stride_is_a_one_line_value_error(bad):
    with pytest.raises(ValueError, match=r"^output_stride must be None or one of \(8, 16, 32\), got "
                                         rf"output_stride={__import__('re').escape(repr(bad))}$"):
        build(TINY, input_shape=(64, 64, 3), output_stride=bad)
    with pytest.raises(ValueError, match="output_stride"):
        complexity(TINY, 64, output_stride=bad)


def test_zoo_builders_regnet_and_anynet_take_output_stride():
    import keras_regnet

    zoo = keras_regnet.RegNetX200MF(include_top=False, input_shape=(64, 64, 3), output_stride=8)
    regnet = keras_regnet.RegNet(depth=4, w0=16, wa=12.0, wm=2.0, group_width=8, include_top=False,
                                 input_shape=(64, 64, 3), output_stride=16)
    anynet = keras_regnet.AnyNet([1, 1, 1], [8, 16, 24], group_widths=8, stem_width=8, include_top=False,
                                 input_shape=(64, 64, 3), output_stride=8)
    assert [m.output_shape[1] for m in (zoo, regnet, anynet)] == [8, 4, 8]
    assert zoo.get_layer("s4_b1_conv_b").dilation_rate == (2, 2)


def _golden_features(keras_model, meta, out):
    images = synthetic_images(meta["seed"], out["batch"], out["height"], out["width"])
    return np.asarray(keras_model(images)), images


def _ours(meta):
    from keras_regnet.checkpoint_converter import load_state_dict

    spec = ZOO[meta["zoo_model"]].spec()
    model = build(spec, classifier_activation=None, include_preprocessing=False,
                  output_stride=meta["output_stride"])
    state = synthetic_state(meta["seed"], meta["state_dict"])
    load_state_dict(model, state, spec)  # timm naming, detected
    return keras.Model(model.input, model.pyramid_outputs["P4"]), state


def _relative(ours, reference):
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def test_dilated_features_equal_timms_at_output_stride_16_golden():
    meta, arrays = eq.load_case(GOLDEN)
    assert meta["output_stride"] == 16 and meta["timm_model"] == "regnety_006"
    features, _ = _ours(meta)
    for out in meta["outputs"]:
        ours, _ = _golden_features(features, meta, out)
        reference = arrays[out["key"]]
        assert ours.shape == reference.shape == (1, -(-out["height"] // 16), -(-out["width"] // 16), 608)
        assert _relative(ours, reference) <= RELATIVE_TOLERANCE, out["key"]
        print(f"{out['key']}: max |ours - timm| / max |timm| = {_relative(ours, reference):.2e}")
    plain = build(ZOO[meta["zoo_model"]].spec(), include_top=False, include_preprocessing=False)
    assert plain.output_shape[-1] == 608  # the undilated model has no stride-16 last stage to compare


def test_dilated_features_equal_live_timms_at_output_stride_16():
    from tests.helpers.timm_import import import_timm

    if import_timm() is None:
        pytest.skip("torch and timm are not installed (the golden test checks the committed timm values)")
    from tests.golden.make_dilated_golden import timm_features

    meta, arrays = eq.load_case(GOLDEN)
    features, state = _ours(meta)
    out = meta["outputs"][1]
    ours, images = _golden_features(features, meta, out)
    live = timm_features(state, images)
    np.testing.assert_allclose(live, arrays[out["key"]], rtol=1e-5, atol=1e-5)  # the golden file is timm's
    assert _relative(ours, live) <= RELATIVE_TOLERANCE
    print(f"max |ours - timm| / max |timm| at output stride 16: {_relative(ours, live):.2e}")


@pytest.fixture(scope="module")
def dilated_logits_model():
    keras.utils.set_random_seed(0)
    return build(TINY, input_shape=(None, None, 3), classes=10, classifier_activation=None, output_stride=8)


def test_savedmodel_of_a_dilated_model_runs_and_agrees(dilated_logits_model, tmp_path):
    from tflite import saved_model

    directory = str(tmp_path / "tiny4" / "1")
    saved_model.save(dilated_logits_model, directory, 64, top_k=3)  # BN folded, graph checked
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    out = tf.saved_model.load(directory).signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(out["logits"].numpy(), dilated_logits_model(images, training=False), atol=1e-4)


def test_tflite_of_a_dilated_model_is_builtin_runs_in_xnnpack_and_agrees(dilated_logits_model, tmp_path):
    from tflite import report, to_tflite

    path = str(tmp_path / "dilated.tflite")
    with open(path, "wb") as f:
        f.write(to_tflite.convert_model(dilated_logits_model, 64, "float32"))  # raises on non-builtin ops
    total, outside = report.conv_delegation(path)
    row = report.VariantReport("float32", path, 1)
    report.check_delegation(row, path)
    assert outside == [] and row.xnnpack_convs == f"{total}/{total}"
    images = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = tf.nn.softmax(dilated_logits_model(images, training=False)).numpy()
    np.testing.assert_allclose(report.tflite_predict(path, images), expected, atol=1e-5)
