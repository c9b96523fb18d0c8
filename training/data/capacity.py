"""`training.main --input_only`: this host's input throughput and the CPUs a GPU rate needs.

Runs the configured train stream (dataset, transform, batch, image size; through the service with
--data_service) without a model, and charges it the process CPU time (all tf.data threads), which
is the per-core cost and less swayed by other jobs than wall clock. With --target_images_per_s it
prints how many such cores, or service workers of this host's size, that rate needs.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

WARMUP_BATCHES = 2
DEFAULT_BATCHES = 20


@dataclass(frozen=True)
class InputRate:
    """What the input stream delivered: wall-clock rate and CPU cost per image on this host."""

    images: int
    images_per_s: float
    cpu_ms_per_image: float
    cores: int
    load_average: float

    @property
    def images_per_core_s(self) -> float:
        return 1e3 / self.cpu_ms_per_image


def measure(dataset: Any, batches: int) -> InputRate:
    """Time `batches` batches of `dataset` after WARMUP_BATCHES (tracing, thread pools)."""
    iterator = iter(dataset)
    for _ in range(WARMUP_BATCHES):
        next(iterator)
    wall, cpu, images = time.perf_counter(), time.process_time(), 0
    for _ in range(batches):
        images += int(next(iterator)[0].shape[0])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return InputRate(images, images / wall, 1e3 * cpu / images, os.cpu_count() or 1, os.getloadavg()[0])


def plan(rate: InputRate, target: float, served: bool) -> list[str]:
    """The lines saying what `target` images/s needs, from a measured rate."""
    if served:
        return [(f"for {target:.0f} images/s: {target / rate.images_per_s:.1f}x the service's present "
                 f"workers (they delivered {rate.images_per_s:.0f} images/s here), and "
                 f"{target * rate.cpu_ms_per_image / 1e3:.1f} cores of this trainer host to receive them")]
    cores = target * rate.cpu_ms_per_image / 1e3
    workers = math.ceil(cores / rate.cores)
    return [(f"for {target:.0f} images/s: {cores:.1f} cores like these ({math.ceil(cores)} at full use); "
             f"this host has {rate.cores}"),
            (f"with --data_service: {workers} worker host(s) of {rate.cores} cores each "
             f"(python -m training.data_service --role=worker ...)")]


def report(cfg: Any) -> list[str]:
    """Measure the train stream `cfg` describes and return the lines --input_only prints."""
    from training.data import make_source
    from training.data.pipeline import train_dataset
    from training.run import prepare

    cfg, _, _ = prepare(cfg)
    source = make_source(cfg)
    batches = cfg.max_steps or DEFAULT_BATCHES
    count = WARMUP_BATCHES + batches
    if source.data_service is not None:
        ds = source.data_service.train_dataset(source, None, cfg.batch_size, 0, 0, count, cfg.image_size, cfg.seed)
    else:
        ds = train_dataset(source, None, cfg.batch_size, 0, 0, count, cfg.image_size, cfg.seed)
    rate = measure(ds, batches)
    where = f"from the tf.data service at {cfg.data_service}" if source.data_service else "on this host"
    lines = [(f"input pipeline {where}: --dataset={cfg.dataset} --crop={cfg.crop} at {cfg.image_size}px, "
              f"batch {cfg.batch_size}, {rate.images} images"),
             (f"  {rate.images_per_s:.0f} images/s wall clock on {rate.cores} cores; {rate.cpu_ms_per_image:.3f} CPU "
              f"ms per image = {rate.images_per_core_s:.0f} images per core-second "
              f"(load average {rate.load_average:.1f})")]
    if cfg.target_images_per_s:
        lines += ["  " + line for line in plan(rate, cfg.target_images_per_s, source.data_service is not None)]
    return lines
