"""TrainConfig validation without TensorFlow: every bad value names its flag and what is allowed."""

from __future__ import annotations

import pytest

from training.core.config import TrainConfig, validate
from training.run import prepare


@pytest.mark.parametrize("changes, message", [
    (dict(lr=float("inf")), "--lr must be a finite number > 0"),
    (dict(lr=float("nan")), "--lr must be a finite number > 0"),
    (dict(weight_decay=float("nan")), "--weight_decay must be a finite number >= 0"),
    (dict(weight_decay=float("inf")), "--weight_decay must be a finite number >= 0"),
    (dict(weight_decay=-1e-4), "--weight_decay must be a finite number >= 0"),
    (dict(warmup_epochs=float("nan")), "--warmup_epochs must be a finite number >= 0"),
    (dict(warmup_epochs=float("inf")), "--warmup_epochs must be a finite number >= 0"),
    (dict(verbose=7), "--verbose must be one of 0, 1, 2"),
    (dict(verbose=-1), "--verbose must be one of 0, 1, 2"),
    (dict(crop="inception"), "--crop='inception' is not allowed; choose one of pycls, tf_inception"),
    (dict(bn_batch=0), "--bn_batch must be a positive integer, got 0"),
    (dict(bn_batch=64, sync_bn=True), "--bn_batch=64 .* cannot be combined with --sync_bn"),
])
def test_non_finite_and_out_of_range_values_name_the_flag(changes, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+").replace("(", r"\(").replace(")", r"\)")):
        validate(TrainConfig(**changes))


def test_valid_values_still_pass():
    validate(TrainConfig(lr=0.1, weight_decay=0.0, warmup_epochs=0.0, verbose=2, epochs=1))


@pytest.mark.parametrize("model, size", [("regnety_200mf", 16), ("regnetx_400mf", 24)])
def test_image_size_below_the_models_total_stride_names_the_flag(model, size):
    cfg = TrainConfig(model=model, image_size=size, model_dir="/nonexistent/never_created")
    with pytest.raises(ValueError, match=rf"--image_size={size} is too small .*total stride 32.*>= 32"):
        prepare(cfg)


def test_image_size_equal_to_the_total_stride_is_accepted():
    cfg, spec, _ = prepare(TrainConfig(model="regnety_200mf", image_size=32,
                                       model_dir="/nonexistent/never_created"))
    assert cfg.image_size == spec.total_stride == 32


def test_warmup_longer_than_the_default_epochs_is_refused():
    from training.core.config import resolve

    with pytest.raises(ValueError, match=r"--warmup_epochs=30.0 exceeds --epochs=20 \(the --dataset=digits default\)"):
        resolve(TrainConfig(warmup_epochs=30.0))
    assert resolve(TrainConfig(warmup_epochs=20.0)).epochs == 20


@pytest.mark.parametrize("dataset, flag", [("digits", "eval_examples"), ("folder", "train_examples"),
                                           ("folder", "label_offset"), ("imagenet2012", "label_offset")])
def test_reader_flags_given_to_a_dataset_that_ignores_them_are_refused(tmp_path, dataset, flag):
    data_dir = None if dataset == "digits" else str(tmp_path)
    with pytest.raises(ValueError, match=rf"--{flag} is only used by --dataset=.*not --dataset={dataset}"):
        validate(TrainConfig(dataset=dataset, data_dir=data_dir, **{flag: 5}))
    validate(TrainConfig(dataset="tfrecord", data_dir=str(tmp_path), **{flag: 5}))


def test_model_json_file_is_recognised_whatever_the_case_of_its_extension(tmp_path, monkeypatch):
    from keras_regnet import get_entry, resolve_model

    spec = get_entry("regnetx_200mf").spec()
    (tmp_path / "Net.JSON").write_text(spec.to_json())
    monkeypatch.chdir(tmp_path)
    resolved, entry = resolve_model("Net.JSON", label="--model")  # a bare file name: no path separator to go by
    assert resolved == spec and entry is None
