"""One block definition: the Keras model, the complexity table and the converter's layer map are
views of `keras_regnet.layer_records`, and no other module spells out a block's layers."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

from keras_regnet import make_spec

from keras_regnet import layer_records
from keras_regnet.complexity import layer_table
from keras_regnet.spec import BLOCK_TYPES
from keras_regnet.pretrained.to_keras import layer_map
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT
# Suffixes of block layer names and reference module names: facts that belong to the walk alone.
BLOCK_FACTS = ("conv_a", "bn_a", "conv_b", "conv_c", "proj_conv", "proj_bn", "se_reduce", "se_expand",
               "se_scale", "f.a_bn", "f.se.f_ex", "conv2.bn", "conv3.conv", "downsample.conv", "se.fc1")


def tiny(block: str):
    return make_spec([1, 2, 2], [16, 32, 48], group_widths=8, strides=[2, 1, 2], block=block,
                     se_ratio=0.25 if block == "y" else 0.0, stem_width=8, name=f"tiny_{block}")


def _is_doc_assignment(node: ast.AST) -> bool:
    """`f.__doc__ = ...` or `SOMETHING_DOC = ...`: documentation built at import time."""
    if not isinstance(node, ast.Assign):
        return False
    return any((isinstance(t, ast.Attribute) and t.attr == "__doc__")
               or (isinstance(t, ast.Name) and t.id.endswith("_DOC")) for t in node.targets)


def _code_strings(path: pathlib.Path) -> list[str]:
    """String constants of a module, documentation (docstrings, `__doc__` / `*_DOC` texts) left out."""
    tree = ast.parse(path.read_text(), str(path))
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
        if _is_doc_assignment(node):
            docs |= {id(inner) for inner in ast.walk(node.value)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docs]


def test_only_the_walk_spells_out_a_block():
    spelled = {}
    for path in sorted((ROOT / "keras_regnet").rglob("*.py")) + sorted((ROOT / "tflite").rglob("*.py")):
        hits = sorted({fact for text in _code_strings(path) for fact in BLOCK_FACTS
                       if re.search(rf"(?<![A-Za-z0-9]){re.escape(fact)}(?![A-Za-z0-9])", text)})
        if hits:
            spelled[str(path.relative_to(ROOT))] = hits
    assert list(spelled) == ["keras_regnet/layer_records.py"], spelled


@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_complexity_table_and_converter_map_are_the_walks_weighted_records(block):
    spec = tiny(block)
    weighted = [r for r in layer_records.network(spec) if r.kind in layer_records.WEIGHTED_KINDS]
    assert [row.name for row in layer_table(spec, 64)] == [r.name for r in weighted]
    assert [(e.layer, e.module) for e in layer_map(spec, "pycls")] == [(r.name, r.pycls) for r in weighted]
    if block in ("x", "y"):
        assert [e.module for e in layer_map(spec, "timm")] == [r.timm for r in weighted]
    else:
        with pytest.raises(ValueError, match="timm naming has no module"):
            layer_map(spec, "timm")


def test_records_feed_only_on_earlier_records_and_a_block_ends_in_its_output():
    for block in BLOCK_TYPES:
        seen = {layer_records.INPUT}
        records = list(layer_records.network(tiny(block)))
        for record in records:
            assert record.kind in layer_records.KINDS and set(record.inputs) <= seen, record
            seen.add(record.name)
        assert len(seen) == len(records) + 1  # names are unique
        spec = tiny(block)
        for site in layer_records.block_sites(spec):  # feature maps are found by these names (features.py)
            last = list(layer_records.block(spec, site.stage, site.prefix, "x", site.c_in, site.stride))[-1]
            assert last.name == f"{site.prefix}_relu"
        assert [s.prefix for s in layer_records.block_sites(spec)] == ["s1_b1", "s2_b1", "s2_b2", "s3_b1", "s3_b2"]


def test_the_walk_is_pure_python():
    code = ("import sys, keras_regnet.layer_records\n"
            "print(','.join(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def _inbound(model, layer) -> list[str]:
    """Names of the layers feeding `layer`, looking through the conv padding layers."""
    names = []
    for tensor in layer._inbound_nodes[0].input_tensors:
        source = tensor._keras_history[0]
        while source.name.endswith("_pad"):
            source = source._inbound_nodes[0].input_tensors[0]._keras_history[0]
        names.append(source.name)
    return names


@pytest.mark.parametrize("block", BLOCK_TYPES)
def test_the_keras_model_is_the_walk_layer_for_layer(block):
    from keras_regnet import build

    spec = tiny(block)
    model = build(spec, input_shape=(32, 32, 3), classes=5)
    records = list(layer_records.network(spec, classes=5))
    built = {layer.name: layer for layer in model.layers
             if not layer.name.endswith("_pad") and layer.name not in ("input_layer", "preprocessing")}
    assert set(built) == {r.name for r in records}
    for record in records:
        inputs = ["preprocessing" if name == layer_records.INPUT else name for name in record.inputs]
        assert _inbound(model, built[record.name]) == inputs, record.name


def test_building_a_keras3_model_imports_neither_tf_keras_nor_tfmot():
    code = ("import sys, keras_regnet\n"
            "keras_regnet.build(keras_regnet.make_spec([1], [16], group_widths=8, block='y', se_ratio=0.25,"
            " stem_width=8), input_shape=(32, 32, 3))\n"
            "print(','.join(m for m in ('tf_keras', 'tensorflow_model_optimization') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
