"""Which launcher started this process as one of several (SLURM, Open MPI, JAX's variables), for both engines.

A scheduler that starts N copies of `training.main` without telling the engine about each other gets N
independent runs writing one model_dir. Each engine asks this module first: the JAX engine then calls
jax.distributed.initialize(), the TensorFlow engine (whose cluster is TF_CONFIG) refuses in one line.
Pure Python: reads only the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

_COUNTS = (("SLURM_STEP_NUM_TASKS", "SLURM"), ("OMPI_COMM_WORLD_SIZE", "Open MPI"), ("JAX_NUM_PROCESSES", "JAX"))


def cluster_launch(environ: Mapping[str, str]) -> str | None:
    """'SLURM (SLURM_STEP_NUM_TASKS=4)', 'Open MPI (OMPI_COMM_WORLD_SIZE=2)', ... or None for a single process.

    A bare `sbatch` script (SLURM_NTASKS without SLURM_PROCID) is not one of srun's tasks and is not counted.
    """
    for name, launcher in _COUNTS:
        value = environ.get(name)
        if name == "SLURM_STEP_NUM_TASKS" and value is None and "SLURM_PROCID" in environ:
            name, value = "SLURM_NTASKS", environ.get("SLURM_NTASKS")
        if value is not None and value.strip().isdigit() and int(value) > 1:
            return f"{launcher} ({name}={value})"
    return None
