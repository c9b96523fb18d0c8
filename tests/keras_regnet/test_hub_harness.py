"""keras-hub's own backbone harness (`keras_hub/src/tests/test_case.py` of the installed wheel) on
`RegNetBackbone`, plain and dilated: serialization, eager and compiled predict, tf.data, the class-name
naming rule, pyramid keys and sizes, quantization, and a `.keras` save/reload with equal outputs.

The harness' mixed-precision step is off: it calls `compute_output_spec` on numpy arrays, which fails
on keras 3.15 for keras-hub's own `ResNetBackbone` too; our dtype policies are tested in
tests/keras_regnet/test_dtype_policies.py.
"""

import numpy as np
import pytest

pytest.importorskip("keras_hub")
pytest.importorskip("grain")  # keras-hub's test_case imports it

from keras_hub.src.tests import test_case as hub_test_case  # noqa: E402

from keras_regnet import make_spec  # noqa: E402
from keras_regnet.hub import RegNetBackbone  # noqa: E402

SPEC = make_spec([1, 1, 1, 1], [8, 16, 24, 32], group_widths=8, block="y", se_ratio=0.25, stem_width=8,
                 name="tiny4").to_dict()


@pytest.mark.slow  # keras-hub's harness builds, predicts and saves each backbone several times (15-25 s a test)
class RegNetBackboneHarnessTest(hub_test_case.TestCase):
    def setUp(self):
        self.input_data = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")

    def _kwargs(self, output_stride):
        return {"spec": SPEC, "image_shape": (64, 64, 3), "output_stride": output_stride}

    def test_plain_backbone(self):
        self.run_vision_backbone_test(
            cls=RegNetBackbone, init_kwargs=self._kwargs(None), input_data=self.input_data,
            expected_output_shape=(2, 2, 2, 32),
            expected_pyramid_output_keys=["P1", "P2", "P3", "P4", "P5"],
            expected_pyramid_image_sizes=[(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)],
            run_mixed_precision_check=False)

    def test_dilated_backbone(self):
        self.run_vision_backbone_test(
            cls=RegNetBackbone, init_kwargs=self._kwargs(16), input_data=self.input_data,
            expected_output_shape=(2, 4, 4, 32),
            expected_pyramid_output_keys=["P1", "P2", "P3", "P4"],
            expected_pyramid_image_sizes=[(32, 32), (16, 16), (8, 8), (4, 4)],
            run_mixed_precision_check=False, run_quantization_check=False)  # quantization: the plain test

    def test_model_saving(self):
        for output_stride in (None, 8):
            self.run_model_saving_test(cls=RegNetBackbone, init_kwargs=self._kwargs(output_stride),
                                       input_data=self.input_data)


def test_unknown_keyword_is_an_error_and_the_default_name_is_keras_hubs():
    with pytest.raises(ValueError, match=r"unknown keyword arguments \['outputstride'\]"):
        RegNetBackbone(SPEC, outputstride=16)
    backbone = RegNetBackbone(SPEC, output_stride=8)
    assert backbone.name.startswith("reg_net_backbone") and backbone.output_shape == (None, None, None, 32)
    assert backbone.get_config()["output_stride"] == 8
    assert RegNetBackbone.from_config(backbone.get_config()).get_layer("s4_b1_conv_b").dilation_rate == (2, 2)
    assert RegNetBackbone(SPEC, name="mine").name == "mine"
