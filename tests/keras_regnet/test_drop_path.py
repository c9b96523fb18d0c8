"""Stochastic depth (drop_path_rate=): timm's per-block rates, per-sample drop in training, identity at inference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_regnet
from keras_regnet.layers import DropPath

SPEC = keras_regnet.make_spec(depths=[1, 2, 3], widths=[8, 16, 24], group_widths=8, block="y", se_ratio=0.25,
                              stem_width=8, name="tiny")


def _timm_rates(depths: list[int], drop_path_rate: float) -> list[list[float]]:
    """Transcribed from timm/models/regnet.py, RegNet._get_stage_args (huggingface/pytorch-image-models):
    stage_dpr = np.split(np.linspace(0, drop_path_rate, sum(stage_depths)), np.cumsum(stage_depths[:-1]))."""
    return [list(r) for r in np.split(np.linspace(0, drop_path_rate, sum(depths)), np.cumsum(depths[:-1]))]


def _model_rates(model: keras.Model) -> list[list[float]]:
    """Per stage, per block: the rate of its DropPath layer (0 where the block has none)."""
    by_name = {layer.name: layer.rate for layer in model.layers if isinstance(layer, DropPath)}
    return [[by_name.get(f"s{s}_b{b}_drop_path", 0.0) for b in range(1, stage.depth + 1)]
            for s, stage in enumerate(SPEC.stages, start=1)]


def test_rates_per_block_are_timms():
    model = keras_regnet.build(SPEC, input_shape=(32, 32, 3), classes=10, drop_path_rate=0.2)
    expected = _timm_rates(list(SPEC.depths), 0.2)
    got = _model_rates(model)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-12)
    assert got[-1][-1] == pytest.approx(0.2) and got[0][0] == 0.0
    assert not any(isinstance(layer, DropPath) for layer in keras_regnet.build(
        SPEC, input_shape=(32, 32, 3), classes=10).layers)  # off by default: the same graph as before


def test_inference_is_unchanged_and_training_drops_whole_samples():
    plain = keras_regnet.build(SPEC, input_shape=(32, 32, 3), classes=10)
    dropped = keras_regnet.build(SPEC, input_shape=(32, 32, 3), classes=10, drop_path_rate=0.5)
    for layer in plain.layers:
        dropped.get_layer(layer.name).set_weights(layer.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(dropped(x, training=False)), np.asarray(plain(x, training=False)))
    assert not np.allclose(np.asarray(dropped(x, training=True)), np.asarray(plain(x, training=True)))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_kept_fraction_within_three_standard_errors(rate):
    """Per sample a branch is kept (scaled by 1 / (1 - rate)) or zeroed, over all of H, W, C."""
    n = 4000
    layer = DropPath(rate, seed=7)
    out = np.asarray(layer(np.ones((n, 3, 2, 4), "float32"), training=True))
    per_sample = out.reshape(n, -1)
    assert np.all(per_sample == per_sample[:, :1])  # one decision per sample
    kept_value = np.float32(1 / (1 - rate))
    assert np.all(np.isclose(per_sample, 0.0) | np.isclose(per_sample, kept_value, rtol=1e-6))
    kept = float((per_sample[:, 0] > 0).mean())
    se = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept - (1 - rate)) < 3 * se, (kept, se)
    np.testing.assert_array_equal(np.asarray(layer(np.ones((5, 2)), training=False)), np.ones((5, 2)))


def test_each_blocks_layer_in_a_model_keeps_its_rate():
    """The model's DropPath layers, called in training, keep 1 - their block's rate within 3 s.e."""
    model = keras_regnet.build(SPEC, input_shape=(32, 32, 3), classes=10, drop_path_rate=0.3)
    n = 3000
    for layer in (layer for layer in model.layers if isinstance(layer, DropPath)):
        kept = float((np.asarray(layer(np.ones((n, 1, 1, 2), "float32"), training=True))[:, 0, 0, 0] > 0).mean())
        se = np.sqrt(layer.rate * (1 - layer.rate) / n)
        assert abs(kept - (1 - layer.rate)) < 3 * se, (layer.name, kept, layer.rate)


def test_saved_and_reloaded(tmp_path):
    model = keras_regnet.build(SPEC, input_shape=(32, 32, 3), classes=10, drop_path_rate=0.2)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [1.0, -0.1, True, "0.1"])
def test_bad_rate_is_a_one_line_error(bad):
    with pytest.raises(ValueError, match=r"`drop_path_rate` must be in \[0, 1\). Received: drop_path_rate="):
        keras_regnet.build(SPEC, input_shape=(32, 32, 3), classes=10, drop_path_rate=bad)
