r"""Accepted RegNetX samples per second in the paper's 360-400MF regime, vs the bar and a naive peer.

    PYTHONPATH=. python benchmarks/sampling.py [--seconds=5] [--space=regnetx]

Ours: `keras_regnet.design_space.sample` (numpy batches, closed-form stage split, batched exact
complexity). Naive peer, measured in the same run on the same distribution: draw one (d, w0, wa,
wm, b, g) at a time, `RegNetParams.to_spec()` + `complexity()`, keep it if it has 4 stages and
360-400MF. Everything runs in one thread. Rates are per CPU-second of this process (what one
core delivers, unaffected by other processes competing for the cores) and per wall-second (what
you see on this machine now). The last line prints the ratios (CPU-time based; wall in brackets).
"""

from __future__ import annotations

import math
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import app, flags  # noqa: E402

from keras_regnet.complexity import complexity  # noqa: E402
from keras_regnet.design_space import get_space, sample  # noqa: E402
from keras_regnet.regnet import RegNetParams  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_float("seconds", 5.0, "Time budget per contender (each repeats until it has used it).",
                   lower_bound=0.5)
flags.DEFINE_enum("space", "regnetx", ["regnetx", "regnety", "regnetx_constrained"], "RegNet space.")
BAR = 2000.0  # accepted samples per second on one core (issue 6)
FLOPS = (360e6, 400e6)


def ours(seconds: float, space: str) -> tuple[int, float, float]:
    """Accepted samples, CPU seconds and wall seconds, sampling 2,000 per call with fresh seeds."""
    n, seed, cpu, start = 0, 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu < seconds:
        n += len(sample(space, 2000, seed=seed, flops=FLOPS))
        seed += 1
    return n, time.process_time() - cpu, time.perf_counter() - start


def naive(seconds: float, space_name: str) -> tuple[int, float, float]:
    """One candidate at a time through the reference rule and complexity()."""
    space = get_space(space_name)
    rng = random.Random(0)

    def log_uniform(lo: float, hi: float, q: float) -> float:  # pycls sweep/random.py's law
        x = math.exp(rng.uniform(math.log(lo - min(q, lo / 2)), math.log(hi)))
        return min(hi, max(lo, math.ceil(x / q) * q))

    n, cpu, start = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu < seconds:
        p = RegNetParams(rng.randint(*space.depth_range), int(log_uniform(*space.w0_range, 8)),
                         round(log_uniform(*space.wa_range, 0.1), 1), round(log_uniform(*space.wm_range, 0.001), 3),
                         rng.choice(space.group_widths), rng.choice(space.bottleneck_ratios), space.se_ratio)
        if p.num_stages() != 4:
            continue
        if FLOPS[0] <= complexity(p.to_spec()).flops <= FLOPS[1]:
            n += 1
    return n, time.process_time() - cpu, time.perf_counter() - start


def main(argv: list[str]) -> None:
    del argv
    sample(FLAGS.space, 10, seed=123, flops=FLOPS)  # warm-up (imports, numpy caches)
    n_ours, cpu_ours, wall_ours = ours(FLAGS.seconds, FLAGS.space)
    n_naive, cpu_naive, wall_naive = naive(FLAGS.seconds, FLAGS.space)
    n_naive = max(n_naive, 1)
    rate, rate_naive = n_ours / cpu_ours, n_naive / cpu_naive
    wall, wall_naive = n_ours / wall_ours, n_naive / wall_naive
    print(f"space {FLAGS.space}, flops {FLOPS[0] / 1e6:.0f}-{FLOPS[1] / 1e6:.0f}MF at 224, one thread, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"ours : {n_ours} accepted, {rate:,.0f}/s per CPU-second ({wall:,.0f}/s wall)")
    print(f"naive: {n_naive} accepted, {rate_naive:,.0f}/s per CPU-second ({wall_naive:,.0f}/s wall) "
          "[one at a time: RegNetParams.to_spec + complexity]")
    print(f"bar  : {BAR:,.0f}/s on one core")
    print(f"ratios: ours/bar={rate / BAR:.2f} [wall {wall / BAR:.2f}] "
          f"ours/naive={rate / rate_naive:.0f} [wall {wall / wall_naive:.0f}]")

if __name__ == "__main__":
    app.run(main)
