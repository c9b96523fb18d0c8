"""Train-step speed of training.main's JAX engine vs timm, each in its own process, on synthetic batches.

    KERAS_BACKEND=jax python benchmarks/gpu_step.py [--models regnety_600mf,regnety_4.0gf] [--batch 256]
        [--image_size 224] [--steps 30] [--warmup 5] [--precision auto] [--peer timm|none] [--loop]

Ours is the engine's own update (training.engines.jax.step.make_train_step: the recipe of TrainConfig's
defaults, jitted with donated state on training.engines.jax.devices' mesh) on the model the trainer
builds (training.engines.jax.assembly: one BN group per device when there are several), fed
device-resident random batches of `--batch` images per device. The peer is timm's model of the same
name (eager and torch.compile, bf16 autocast on GPUs, channels_last, Nesterov SGD) on one device at the
same per-device batch, run by this script in a subprocess of its own. Printed per model: img/s per
device, ms/step, compile seconds, peak device memory, the bytes the step moves (XLA's cost analysis) as
a fraction of the GPU's memory-bandwidth limit, and the ratios to timm.

--loop also runs the real trainer loop (training.core.loop: lagged metrics read, NaN/state checks, host
LR, progress, TensorBoard cadence, checkpoint cadence) over the same device-resident batch, alternating
rounds with the bare step, and prints as its last lines `loop/step <model> = R`: the loop's img/s over
the bare step's in the same run (1.0: the loop costs the device nothing).

It imports no TensorFlow, so it runs where only JAX, Keras (and torch/timm for the peer) are installed;
on a CPU it runs at tiny sizes (tests/training/test_jax_equivalence.py runs it so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMM_NAMES = {"regnety_600mf": "regnety_006", "regnety_4.0gf": "regnety_040", "regnety_200mf": "regnety_002",
              "regnetx_600mf": "regnetx_006", "regnetx_200mf": "regnetx_002"}
# Peak HBM bandwidth (bytes/s) by device kind, from the vendors' data sheets (SXM parts).
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.04e12}


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="regnety_600mf,regnety_4.0gf")
    p.add_argument("--batch", type=int, default=256, help="images per device (timm: on one device)")
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--precision", default="auto", choices=("auto", "off", "bfloat16"))
    p.add_argument("--peer", default="timm", choices=("timm", "none"))
    p.add_argument("--loop", action="store_true", help="also time the trainer loop: prints loop/step <model> = R last")
    p.add_argument("--rounds", type=int, default=5, help="with --loop: alternating rounds of bare step and loop")
    p.add_argument("--side", default="ours", choices=("ours", "timm"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _peak_bandwidth(kind: str) -> float | None:
    return next((bw for name, bw in PEAK_BANDWIDTH.items() if name in kind), None)


class _ResidentFeed:
    """What a JaxFeed offers the trainer, serving one device-resident batch: the loop measured, not the input."""

    class source:  # noqa: N801 (the feed's Source: read for the class count and the banner)
        name, num_train, num_eval = "synthetic", 0, 0

    def __init__(self, images: Any, labels: Any, classes: int, steps_per_epoch: int) -> None:
        self.images, self.labels = images, labels
        self.source.num_classes = classes
        self.global_batch, self.steps_per_epoch, self.eval_steps = int(labels.shape[0]), steps_per_epoch, 0

    def train(self, epoch: int, start: int, count: int) -> Any:
        return iter([(self.images, self.labels)] * count)

    def eval(self) -> Any:
        return iter(())


def measure_ours(model_name: str, a: argparse.Namespace) -> dict[str, Any]:
    """The JAX engine's step on `model_name`: compile time, img/s per device, memory, bytes moved per step;
    with --loop also the trainer loop's img/s over the same steps."""
    os.environ["KERAS_BACKEND"] = "jax"
    import tempfile

    import jax
    import numpy as np

    from training.core.config import TrainConfig
    from training.core.recipe import recipe_lr
    from training.engines.jax import step as jax_step
    from training.engines.jax.assembly import make_trainer
    from training.engines.jax.devices import JaxRuntime, make_layout, replicate
    from training.engines.jax.precision import resolve_policy
    from training.run import prepare

    layout = make_layout("auto")
    policy = resolve_policy({"off": "off", "bfloat16": "bfloat16"}.get(a.precision, "auto"), layout)
    devices, global_batch = layout.devices, a.batch * layout.devices
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.uniform(0, 255, (global_batch, a.image_size, a.image_size, 3)).astype("float32"),
                            layout.batch)
    labels = jax.device_put(rng.integers(0, a.classes, global_batch).astype("int32"), layout.batch)
    rounds = a.rounds if a.loop else 1
    feed = _ResidentFeed(images, labels, a.classes, steps_per_epoch=rounds * (a.warmup + a.steps))
    with tempfile.TemporaryDirectory() as model_dir:
        cfg, spec, _ = prepare(TrainConfig(model=model_name, image_size=a.image_size, batch_size=global_batch,
                                           epochs=1, lr=recipe_lr(global_batch), model_dir=model_dir,
                                           verbose=2, precise_bn_images=0))
        import keras

        keras.utils.set_random_seed(0)
        trainer = make_trainer(cfg, JaxRuntime(layout, policy), feed, spec)  # the trainer's model: its BN groups
        step = jax_step.make_train_step(trainer.model, trainer.optimizer, global_batch=global_batch,
                                        num_classes=a.classes, weight_decay=cfg.weight_decay,
                                        label_smoothing=cfg.label_smoothing)
        jitted = jax.jit(step, donate_argnums=0, out_shardings=layout.replicated)
        state = replicate(jax_step.initial_state(trainer.model, trainer.optimizer, None), layout)
        t0 = time.perf_counter()
        compiled = jitted.lower(state, images, labels).compile()
        compile_s = time.perf_counter() - t0
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost

        def bare() -> float:
            nonlocal state
            for _ in range(a.warmup):
                state, metrics = compiled(state, images, labels)
            jax.block_until_ready(state)  # not `metrics`: with --warmup 0 there is none yet
            t0 = time.perf_counter()
            for _ in range(a.steps):
                state, metrics = compiled(state, images, labels)
            jax.block_until_ready(state)
            return (time.perf_counter() - t0) / a.steps

        def loop() -> float:
            """The trainer's own epoch loop: a.warmup steps untimed, then a.steps timed (it ends on a host read)."""
            scalars = _no_scalars()
            trainer._train_epoch(0, trainer.current_step(), a.warmup, scalars)
            t0 = time.perf_counter()
            trainer._train_epoch(0, trainer.current_step(), a.steps, scalars)
            return (time.perf_counter() - t0) / a.steps

        bare_s, loop_s = [], []
        if a.loop:
            trainer.restore_or_start()
        for _ in range(rounds):
            bare_s.append(bare())
            if a.loop:
                loop_s.append(loop())
        if a.loop:
            trainer.finish_writes()  # the loop's last background checkpoint write
        seconds = min(bare_s)
        finite = bool(np.isfinite(np.asarray(jax.device_get(state.trainable[0]))).all())
    device = layout.mesh.devices.flat[0]
    stats = device.memory_stats() or {}
    moved = float((cost or {}).get("bytes accessed", 0.0)) / devices
    peak = _peak_bandwidth(device.device_kind)
    row = {"side": f"keras_regnet (JAX engine, {devices} dev)", "model": model_name, "device": device.device_kind,
           "devices": devices, "precision": policy, "img_s": a.batch / seconds, "ms_step": 1e3 * seconds,
           "compile_s": compile_s, "peak_mem_gib": stats.get("peak_bytes_in_use", 0) / 2**30 or None,
           "bytes_per_step_gb": moved / 1e9 or None,
           "bandwidth_fraction": (moved / seconds / peak) if (moved and peak) else None, "loss_finite": finite}
    if loop_s:
        row.update(loop_img_s=a.batch / min(loop_s), loop_ratio=min(bare_s) / min(loop_s),
                   rounds={"bare_ms": [1e3 * t for t in bare_s], "loop_ms": [1e3 * t for t in loop_s]})
    return row


def _no_scalars() -> Any:
    """The loop's TensorBoard writer with no log directory (writes nothing; the loop still calls it)."""
    from training.core.reporting import Scalars

    return Scalars(None)


def measure_timm(model_name: str, a: argparse.Namespace) -> list[dict[str, Any]]:
    """timm's model of the same name, eager and torch.compile, AMP bf16 on CUDA, channels_last."""
    import timm
    import torch

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    out = []
    for mode in ("eager", "compile"):
        model = timm.create_model(TIMM_NAMES[model_name], num_classes=a.classes).to(device)
        model = model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-5)
        run = torch.compile(model) if mode == "compile" else model
        x = torch.rand(a.batch, 3, a.image_size, a.image_size, device=device).to(memory_format=torch.channels_last)
        y = torch.randint(0, a.classes, (a.batch,), device=device)

        def step(run: Any = run, x: Any = x, y: Any = y, opt: Any = opt) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and a.precision != "off"):
                loss = torch.nn.functional.cross_entropy(run(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        compile_s = time.perf_counter() - t0
        for _ in range(a.warmup):
            step()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        if cuda:
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - t0) / a.steps
        out.append({"side": f"timm {mode}", "model": model_name, "img_s": a.batch / seconds,
                    "ms_step": 1e3 * seconds, "compile_s": compile_s,
                    "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None})
    return out


def _timm_in_subprocess(argv: list[str]) -> tuple[list[dict[str, Any]], str | None]:
    """Rows from this script run with --side=timm in its own process, or ([], why not)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--side=timm"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    rows = [json.loads(line[5:]) for line in proc.stdout.splitlines() if line.startswith("ROW: ")]
    if proc.returncode != 0 and not rows:
        return [], (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return rows, None


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = _args(argv)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if a.side == "timm":
        for name in models:
            for row in measure_timm(name, a):
                print("ROW: " + json.dumps(row), flush=True)
        return 0
    ours = [measure_ours(name, a) for name in models]
    peers, why = _timm_in_subprocess(argv) if a.peer == "timm" else ([], "--peer=none")
    print(f"batch {a.batch} per device x {ours[0]['devices']}, {a.image_size}x{a.image_size}, {a.steps} timed steps "
          f"after {a.warmup}; device {ours[0]['device']}, precision {ours[0]['precision']}; img/s and GB per device")
    print(f"{'model':<15}{'side':<36}{'img/s':>10}{'ms/step':>10}{'compile s':>11}{'peak GiB':>10}"
          f"{'GB/step':>9}{'of BW':>7}")
    for row in ours + peers:
        print(f"{row['model']:<15}{row['side']:<36}{row['img_s']:>10.1f}{row['ms_step']:>10.2f}"
              f"{row['compile_s']:>11.1f}{_fmt(row.get('peak_mem_gib'), '.2f'):>10}"
              f"{_fmt(row.get('bytes_per_step_gb'), '.2f'):>9}{_fmt(row.get('bandwidth_fraction'), '.0%'):>7}")
    for row in ours:
        for peer in (p for p in peers if p["model"] == row["model"]):
            print(f"ratio {row['model']}: keras_regnet JAX / {peer['side']} = {row['img_s'] / peer['img_s']:.2f}x")
    if why:
        print(f"timm side not measured: {why}")
    for row in (r for r in ours if "loop_ratio" in r):
        print(f"loop {row['model']}: {row['loop_img_s']:.1f} img/s per device; rounds (ms/step) bare "
              f"{', '.join(f'{t:.2f}' for t in row['rounds']['bare_ms'])}, loop "
              f"{', '.join(f'{t:.2f}' for t in row['rounds']['loop_ms'])}")
    for row in (r for r in ours if "loop_ratio" in r):
        print(f"loop/step {row['model']} = {row['loop_ratio']:.3f}")
    return 0 if all(row["loss_finite"] for row in ours) else 1


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main())
