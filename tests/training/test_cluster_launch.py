"""Cluster launches are detected for both engines; the TensorFlow engine refuses one that TF_CONFIG does not join."""

from __future__ import annotations

import pytest

from keras_regnet.errors import ConfigError
from training.core.cluster_launch import cluster_launch


def test_cluster_launches_of_several_processes_are_detected():
    assert cluster_launch({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "1"}) == "SLURM (SLURM_STEP_NUM_TASKS=4)"
    assert cluster_launch({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"}) == "SLURM (SLURM_NTASKS=2)"
    assert cluster_launch({"SLURM_NTASKS": "8"}) is None  # an sbatch script itself, not one of srun's tasks
    assert cluster_launch({"OMPI_COMM_WORLD_SIZE": "2"}) == "Open MPI (OMPI_COMM_WORLD_SIZE=2)"
    assert cluster_launch({"JAX_NUM_PROCESSES": "3"}) == "JAX (JAX_NUM_PROCESSES=3)"
    assert cluster_launch({"SLURM_STEP_NUM_TASKS": "1", "OMPI_COMM_WORLD_SIZE": "1"}) is None


@pytest.mark.parametrize("strategy", ["auto", "one_device", "mirrored"])
def test_the_tensorflow_engine_refuses_a_cluster_launch_without_tf_config(monkeypatch, strategy):
    from training.engines.tensorflow import devices

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    with pytest.raises(ConfigError, match=r"one of several started by SLURM \(SLURM_STEP_NUM_TASKS=2\), but "
                                          r"TF_CONFIG is not set.*same --model_dir"):
        devices.make_strategy(strategy)


def test_a_single_process_and_a_tf_config_cluster_are_not_refused(monkeypatch):
    from training.engines.tensorflow import devices

    for name in ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "OMPI_COMM_WORLD_SIZE", "JAX_NUM_PROCESSES", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    devices.refuse_cluster_launch_without_tf_config({})  # one process: nothing to refuse
    _, kind = devices.make_strategy("one_device")
    assert kind == "one_device"
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
                                    '"task": {"type": "worker", "index": 0}}')
    assert devices.tf_config_workers() == (2, "worker", 0)
    assert devices.make_strategy("one_device")[1] == "one_device"  # TF_CONFIG joins them: not refused
