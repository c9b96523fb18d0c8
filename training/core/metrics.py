"""Named per-step metrics (what the train and eval steps return) and their running totals on the host.

A step returns `StepMetrics` of *sums* over its batch (summed again over replicas by
each engine's step), never means: sums add up across replicas, steps and workers whatever the
replica count, and a mean is taken only once, on the host, from the totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from training.core.objective import StepMetrics

# A train step's outputs travel to the host as one vector: StepMetrics' fields, then the state-finite flag.
OUTPUT_FIELDS = (*StepMetrics._fields, "state_finite")


@dataclass(frozen=True)
class StepResult:
    """One train step's outputs on the host: its metrics and whether the state it produced is all finite.

    `state_finite` covers weights, optimizer slots, BN statistics and EMA shadows (one reduction on the
    device): a checkpoint is written only from a state whose step read True.
    """

    metrics: StepMetrics
    state_finite: bool

    @classmethod
    def unpack(cls, values: Sequence[float]) -> "StepResult":
        """From the host copy of the step's output vector (OUTPUT_FIELDS order)."""
        if len(values) != len(OUTPUT_FIELDS):
            raise RuntimeError(f"a train step's output vector has {len(OUTPUT_FIELDS)} values, got {len(values)}")
        *metrics, finite = (float(v) for v in values)
        return cls(StepMetrics(*metrics), finite == 1.0)


@dataclass
class Totals:
    """Running sums of StepMetrics over steps: an epoch's training or a whole evaluation."""

    loss_sum: float = 0.0
    top1: float = 0.0
    top5: float = 0.0
    valid: float = 0.0
    invalid: float = 0.0

    @classmethod
    def of(cls, metrics: StepMetrics) -> "Totals":
        """Totals holding one step's metrics."""
        return cls(**metrics.to_host()._asdict())

    def add(self, metrics: StepMetrics) -> "Totals":
        """Add one step's metrics (tensors or floats) in place; returns self."""
        for name, value in metrics.to_host()._asdict().items():
            setattr(self, name, getattr(self, name) + value)
        return self

    @property
    def examples(self) -> float:
        """Examples the means divide by: the valid count, at least 1 (an all-skipped batch)."""
        return max(self.valid, 1.0)

    @property
    def loss(self) -> float:
        """Mean cross-entropy per valid example."""
        return self.loss_sum / self.examples

    def errors(self) -> dict[str, float]:
        """Mean loss and top-1/top-5 error (%), as logged and reported."""
        return {"loss": self.loss, "top1_err": 100.0 * (1 - self.top1 / self.examples),
                "top5_err": 100.0 * (1 - self.top5 / self.examples)}

    def summary(self) -> dict[str, float]:
        """errors() plus the number of examples they cover (an evaluation's result)."""
        return {**self.errors(), "examples": self.examples}


def accumulate(step: Callable[[Any], StepMetrics], iterator: Any, count: int) -> Totals:
    """Run `count` steps on `iterator` and total their metrics."""
    totals = Totals()
    for _ in range(count):
        totals.add(step(iterator))
    return totals
