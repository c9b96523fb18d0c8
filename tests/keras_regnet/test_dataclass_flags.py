"""Each config value is declared once: absl flags are generated from the config dataclasses' fields."""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from absl import flags

from keras_regnet import dataclass_flags
from keras_regnet.dataclass_flags import flag_field
from keras_regnet.errors import ConfigError
from tests.helpers.paths import REPO_ROOT

ROOT = str(REPO_ROOT)
CLI_MODULES = ("training.main", "training.evaluate", "design_lab.sweep", "design_lab.latency", "tflite.export")


def _configs() -> dict[str, tuple[type, object]]:
    """CLI -> (its config dataclass, its define_flags)."""
    from tflite import export
    from tflite.export_run import ExportConfig
    from training import evaluate
    from design_lab import latency
    from design_lab import sweep
    from training import flags as train_flags
    from training.core.config import TrainConfig

    return {"training.main": (TrainConfig, train_flags.define_flags),
            "training.evaluate": (evaluate.EvalConfig, evaluate.define_flags),
            "design_lab.sweep": (sweep.SweepCliConfig, sweep.define_flags),
            "design_lab.latency": (latency.LatencyCliConfig, latency.define_flags),
            "tflite.export": (ExportConfig, export.define_flags)}


def _defined(cli: str) -> tuple[type, flags.FlagValues]:
    """The CLI's config class and a fresh FlagValues holding only its flags."""
    cls, define = _configs()[cli]
    fv = flags.FlagValues()
    define(fv)
    return cls, fv


@pytest.mark.parametrize("cli", ["training.main", "training.evaluate", "design_lab.sweep", "design_lab.latency",
                                 "tflite.export"])
def test_every_field_is_a_flag_with_its_default_and_help(cli):
    cls, fv = _defined(cli)
    fields = dataclasses.fields(cls)
    assert sorted(fv) == sorted(f.name for f in fields)
    for f in fields:
        help_ = f.metadata["help"]
        assert help_.strip() and fv[f.name].help.endswith(help_), f.name
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        assert fv[f.name].default == default, f.name
        if "choices" in f.metadata:
            assert list(fv[f.name].parser.enum_values) == list(f.metadata["choices"]), f.name


def test_train_config_fields_keep_the_cli_flags_choices_and_defaults():
    from training.core import config as C

    _, fv = _defined("training.main")
    assert fv["weight_decay"].default == 5e-5 and fv["resume"].default is True
    assert fv["dataset"].parser.enum_values == list(C.DATASETS)
    assert fv["mixed_precision"].parser.enum_values == list(C.PRECISIONS)
    assert isinstance(fv["epochs"].parser, flags.IntegerParser) and fv["epochs"].default is None
    assert isinstance(fv["lr"].parser, flags.FloatParser)


def test_changing_a_dataclass_default_changes_the_flag(monkeypatch):
    from training.core.config import TrainConfig

    field = TrainConfig.__dataclass_fields__["weight_decay"]
    monkeypatch.setattr(field, "default", 1e-4)
    _, fv = _defined("training.main")
    assert fv["weight_decay"].default == 1e-4


def test_flags_round_trip_to_the_dataclass():
    from training.core.config import TrainConfig

    _, fv = _defined("training.main")
    fv(["prog", "--weight_decay=1e-4", "--dataset=folder", "--data_dir=/d", "--noresume", "--epochs=3",
        "--crop=tf_inception"])
    cfg = dataclass_flags.from_flags(TrainConfig, fv)
    assert cfg == TrainConfig(weight_decay=1e-4, dataset="folder", data_dir="/d", resume=False, epochs=3,
                              crop="tf_inception")
    _, fv = _defined("training.main")
    fv(["prog"])
    assert dataclass_flags.from_flags(TrainConfig, fv) == TrainConfig()


def test_export_list_flag_round_trips_to_a_tuple():
    from tflite.export import config_from_flags
    from tflite.export_run import DEFAULT_FORMATS, ExportConfig

    _, fv = _defined("tflite.export")
    fv(["prog"])
    assert config_from_flags(fv) == ExportConfig() and config_from_flags(fv).formats == DEFAULT_FORMATS
    _, fv = _defined("tflite.export")
    fv(["prog", "--formats= float32, ,int8", "--qat_learning_rate=0.01", "--int8_io=int8"])
    cfg = config_from_flags(fv)
    assert cfg.formats == ("float32", "int8") and cfg.qat_learning_rate == 0.01 and cfg.int8_io == "int8"


@pytest.mark.parametrize("cli, argv, flag", [
    ("design_lab.sweep", "--num_models=0", "num_models"),
    ("design_lab.sweep", "--stem_stride=3", "stem_stride"),
    ("training.main", "--strategy=horovod", "strategy"),
    ("tflite.export", "--int8_io=int4", "int8_io"),
])
def test_bad_values_are_errors_naming_the_flag(cli, argv, flag):
    _, fv = _defined(cli)
    with pytest.raises(flags.IllegalFlagValueError, match=flag):
        fv(["prog", argv])


def test_defining_twice_is_harmless_and_a_different_flag_of_the_same_name_is_refused():
    from training.evaluate import EvalConfig
    from design_lab.sweep import SweepCliConfig

    fv = flags.FlagValues()
    dataclass_flags.define_flags(EvalConfig, fv)
    dataclass_flags.define_flags(EvalConfig, fv)
    before = sorted(fv)
    with pytest.raises(ConfigError, match="--image_size is already defined differently"):
        dataclass_flags.define_flags(SweepCliConfig, fv)  # evaluate's --image_size defaults to None, sweep's 32
    assert sorted(fv) == before  # nothing half-defined


@dataclass(frozen=True)
class _Small:
    verbose: int = flag_field(1, "Verbosity.", choices=(0, 1, 2))
    name: str | None = flag_field(None, "A name.", required=True)
    sizes: list[str] = dataclasses.field(default_factory=lambda: ["a"], metadata={"help": "Sizes."})


def test_int_choices_required_flags_and_list_fields():
    fv = flags.FlagValues()
    dataclass_flags.define_flags(_Small, fv)
    with pytest.raises(flags.IllegalFlagValueError, match="verbose"):
        fv(["prog", "--name=x", "--verbose=3"])
    fv = flags.FlagValues()
    dataclass_flags.define_flags(_Small, fv)
    with pytest.raises(flags.IllegalFlagValueError, match="name"):
        fv(["prog"])
    fv = flags.FlagValues()
    dataclass_flags.define_flags(_Small, fv)
    fv(["prog", "--name=x", "--verbose=2", "--sizes=b,c"])
    assert dataclass_flags.from_flags(_Small, fv) == _Small(verbose=2, name="x", sizes=["b", "c"])


def test_undocumented_or_unsupported_fields_are_config_errors():
    @dataclass(frozen=True)
    class NoHelp:
        x: int = 1

    @dataclass(frozen=True)
    class Weird:
        x: dict = dataclasses.field(default_factory=dict, metadata={"help": "A dict."})

    with pytest.raises(ConfigError, match=r"NoHelp\.x has no metadata\['help'\]"):
        dataclass_flags.define_flags(NoHelp, flags.FlagValues())
    with pytest.raises(ConfigError, match="Weird.x: cannot make a flag"):
        dataclass_flags.define_flags(Weird, flags.FlagValues())
    with pytest.raises(ConfigError, match="mutable"):
        flag_field([1], "A list.")


def test_every_cli_imports_into_one_process_and_defines_its_flags_only_when_it_runs():
    """evaluate and sweep both have --image_size (defaults None and 32): importing both used to fail.

    training.main is the launcher: it defines the training flags on import (custom launchers run
    `app.run(training.main.main)`), and they coexist with every other CLI imported beside it."""
    code = (
        "import importlib\n"
        "from absl import flags\n"
        f"for name in {CLI_MODULES[1:]!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'image_size' not in flags.FLAGS, 'a CLI defined flags at import'\n"
        "importlib.import_module('training.main')\n"
        "assert flags.FLAGS['weight_decay'].default == 5e-5, 'training.main defines its flags on import'\n"
        f"for name in {CLI_MODULES!r}:\n"
        "    fv = flags.FlagValues()\n"
        "    importlib.import_module(name).define_flags(fv)\n"
        "    fv(['prog'] + (['--model=regnety_600mf'] if name == 'training.evaluate' else []))\n"
        "    assert fv['image_size'].value == fv['image_size'].default, name\n"
        "import training.flags\n"
        "training.flags.define_flags(); training.flags.define_flags()\n"
        "import sys\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'defining flags imported TensorFlow'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


@pytest.mark.parametrize("cli", ["training.evaluate", "design_lab.sweep", "design_lab.latency", "tflite.export"])
def test_helpfull_documents_every_field(cli):
    cls, _ = _configs()[cli]
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-m", cli, "--helpfull"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300).stdout
    for f in dataclasses.fields(cls):
        flag = f"--[no]{f.name}:" if isinstance(f.default, bool) else f"--{f.name}:"
        assert flag in out, flag
        assert " ".join(f.metadata["help"].split()[:3]) in " ".join(out.split()), f.name


def test_train_api_defaults_come_from_train_config(monkeypatch):
    import training.run
    from training.api import API_DEFAULTS, train
    from training.core.config import TrainConfig

    seen = {}
    monkeypatch.setattr(training.run, "run", lambda cfg, spec=None, persist=True: seen.setdefault("cfg", cfg) and {})
    train("regnety_digits", weight_decay=1e-4)
    cfg = seen["cfg"]
    assert cfg.weight_decay == 1e-4 and cfg.momentum == TrainConfig().momentum
    assert {k: getattr(cfg, k) for k in API_DEFAULTS} == API_DEFAULTS
    params = inspect.signature(train).parameters
    assert params["weight_decay"].default == TrainConfig().weight_decay and params["epochs"].default == 1
    with pytest.raises(ConfigError, match="unknown keyword.*wieght_decay"):
        train("regnety_digits", wieght_decay=1e-4)
