"""What a design-space study trains: one sweep per space, every sweep with the same seed and budget.

The paper's protocol (Sec. 3.1): every space is sampled under the same flops range and every model is
trained with the same recipe, data, epochs and seed, so error differences come from the spaces only.
A `StudyPlan` holds those shared settings once and derives each space's `SweepConfig` from them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from design_lab.sweep_runner import RESULTS, SweepConfig
from keras_regnet.design_space.spaces import get_space
from keras_regnet.errors import ConfigError

DEFAULT_SPACES = ("anynetx_a", "anynetx_c", "anynetx_e", "regnetx")
NOISE_DIR = "noise"  # study_dir/noise: the noise-floor retrainings
REPORT_DIR = "report"  # study_dir/report: report.md and its figures


@dataclass(frozen=True)
class StudyPlan:
    """The chain of spaces, population size per space and the settings every model shares."""

    spaces: tuple[str, ...] = DEFAULT_SPACES
    n: int = 100
    seed: int = 0
    flops_range: Optional[tuple[float, float]] = None
    image_size: int = 16
    stem_stride: int = 1
    stem_width: int = 16
    classes: int = 10
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.spaces:
            raise ConfigError("a study needs at least one design space")
        for s in self.spaces:
            get_space(s)
        if len(set(self.spaces)) != len(self.spaces):
            raise ConfigError(f"each space may appear once in a study, got {list(self.spaces)}")
        if self.n < 1:
            raise ConfigError(f"n (models per space) must be >= 1, got {self.n!r}")

    def sweep_config(self, space: str) -> SweepConfig:
        """The sweep of one space: same seed, flops range, resolution, stem and training for all."""
        return SweepConfig(space, self.n, self.seed, self.flops_range, image_size=self.image_size,
                           stem_stride=self.stem_stride, stem_width=self.stem_width, classes=self.classes,
                           train=dict(self.train))

    def with_n(self, n: int) -> "StudyPlan":
        return replace(self, n=n)


def sweep_dir(study_dir: str, space: str) -> str:
    """study_dir/<space>: the sweep runner's layout (config.json, samples.jsonl, results.jsonl)."""
    return os.path.join(study_dir, get_space(space).name)


def rounds(n: int, round_size: int) -> list[int]:
    """Index bounds of the training rounds: models [0, r1) of every space, then [r1, r2), ... up to n."""
    if round_size < 1:
        raise ConfigError(f"round_size must be >= 1, got {round_size!r}")
    return list(range(min(round_size, n), n, round_size)) + [n]


def finished(study_dir: str, space: str) -> list[dict[str, Any]]:
    """The finished records of one space's sweep (empty when it has not started)."""
    from design_lab.sweep_results import ResultsFile

    return ResultsFile(os.path.join(sweep_dir(study_dir, space), RESULTS)).load()


def describe(plan: StudyPlan) -> str:
    """One line per setting shared by all models, for the plan printed before a study starts."""
    lo_hi = plan.flops_range
    flops = "any" if lo_hi is None else f"{lo_hi[0] / 1e6:.3g}-{lo_hi[1] / 1e6:.3g} MF"
    train = json.dumps({k: v for k, v in sorted(plan.train.items()) if v is not None})
    return (f"spaces {' -> '.join(get_space(s).name for s in plan.spaces)}; {plan.n} models per space "
            f"({plan.n * len(plan.spaces)} in all); flops {flops} at {plan.image_size}px, stem stride "
            f"{plan.stem_stride}, stem width {plan.stem_width}, sampling seed {plan.seed} (model i trains with "
            f"seed {plan.seed}*100003 + i in every space); training {train}")
