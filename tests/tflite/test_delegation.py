"""Delegate check: which CONV_2D ops XNNPACK runs; a grouped conv left to the reference kernel fails."""

import keras
import numpy as np
import pytest

from keras_regnet import build, make_spec
from tests.helpers.litert_doubles import refuse_xnnpack
from tflite import report
from tflite import to_tflite

SIZE = 16


def _write(tmp_path, flatbuffer, name):
    path = str(tmp_path / f"{name}.tflite")
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path


def _model(group_widths):
    # Seeded: with some random inits (1 seed in 12) a SE ReLU is dead on all three constant calibration
    # images, its int8 scale collapses to ~1e-8 and XNNPACK refuses the whole int8 graph.
    keras.utils.set_random_seed(0)
    spec = make_spec([1, 1], [16, 32], group_widths=group_widths, block="y", se_ratio=0.25, stem_width=8,
                     stem_stride=1, name="tiny_y")
    return build(spec, input_shape=(None, None, 3), classes=10, classifier_activation=None)


@pytest.fixture(scope="module")
def grouped():
    return _model(8)  # 3x3 convs with 2 and 4 groups


@pytest.mark.parametrize("fmt", ["float32", "int8"])
def test_every_conv_of_our_exports_runs_in_xnnpack(grouped, tmp_path, fmt):
    data = lambda: ([np.full((1, SIZE, SIZE, 3), v, np.float32)] for v in (0.0, 128.0, 255.0))  # noqa: E731
    path = _write(tmp_path, to_tflite.convert_model(grouped, SIZE, fmt, representative=data), fmt)
    total, outside = report.conv_delegation(path)
    assert total == 13 and outside == []  # stem + 2 blocks x (a, b, c, proj, SE reduce, SE expand)
    row = report.VariantReport(fmt, path, 1)
    report.check_delegation(row, path)
    assert row.xnnpack_convs == f"{total}/{total}"
    assert f"CONV_2D in XNNPACK {total}/{total}" in report.to_markdown([row])


def test_grouped_convs_on_the_reference_kernel_fail_naming_the_op(grouped, tmp_path, monkeypatch):
    path = _write(tmp_path, to_tflite.convert_model(grouped, SIZE, "float32"), "refused")
    refuse_xnnpack(monkeypatch)
    total, outside = report.conv_delegation(path)
    assert len(outside) == total
    row = report.VariantReport("float32", path, 1)
    with pytest.raises(report.DelegateFallbackError, match=r"float32 export: XNNPACK does not run 2 grouped "
                                                           r"CONV_2D op\(s\): CONV_2D #\d+ \(.*groups=2\)") as err:
        report.check_delegation(row, path, "float32 export")
    assert isinstance(err.value, ValueError) and any("groups=4" in op for op in err.value.ops)


def test_dense_convs_on_the_reference_kernel_are_reported_not_refused(tmp_path, monkeypatch):
    model = _model([16, 32])  # group width = block width: every conv has one group
    path = _write(tmp_path, to_tflite.convert_model(model, SIZE, "float32"), "dense")
    refuse_xnnpack(monkeypatch)
    row = report.VariantReport("float32", path, 1)
    report.check_delegation(row, path)
    assert row.xnnpack_convs.startswith("0/")
