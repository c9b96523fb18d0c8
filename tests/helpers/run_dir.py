"""Reading a training run directory from outside the process that writes it (kill/resume tests)."""

from __future__ import annotations

import os
import re


def committed_step(model_dir: str) -> int:
    """Step of the checkpoint the manager committed (its state file is renamed in last); 0 if none."""
    try:
        with open(os.path.join(model_dir, "checkpoints", "checkpoint")) as f:
            return int(re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return 0
