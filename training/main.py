"""`python -m training.main`: train a RegNet (default: a small RegNetY on the embedded digits).

With no flags it trains `regnety_digits` on scikit-learn's handwritten digits (no download) and
prints where the checkpoint, metrics JSON, TensorBoard logs and .keras model went. See
docs/training.md for ImageNet, multi-worker, TPU and resume.
"""

from __future__ import annotations

import os
import sys

from training.core.engine_choice import select_backend  # noqa: E402

# --engine picks Keras' backend, which Keras reads once, on import: set it before anything imports Keras.
_ENGINE_ERROR = select_backend(sys.argv[1:])

from absl import app  # noqa: E402

from keras_regnet import cli_help  # noqa: E402
from training.flags import config_from_flags, define_flags  # noqa: E402

# The launcher module defines its flags on import, so a custom launcher can set devices up first and
# then `from training import main; app.run(main.main)` (the library-style CLIs define theirs only when run).
define_flags()


def main(argv: list[str]) -> int:
    """Validate flags (one-line error naming the flag), train, print where outputs went."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if _ENGINE_ERROR:
        print(f"FATAL config error: {_ENGINE_ERROR}", file=sys.stderr)
        return 2
    from keras_regnet.errors import one_line, print_missing_dependency
    from training.core.config import validate
    from training.core.divergence import Diverged
    from training.core.preemption import PREEMPTED_EXIT_CODE, Preempted
    from training.core.write_guard import WRITE_FAILED_EXIT_CODE, WriteFailed

    cfg = config_from_flags()
    try:
        validate(cfg)
        if cfg.input_only:
            from training.data.capacity import report

            print("\n".join(report(cfg)))
            return 0
        from training.run import run

        result = run(cfg)
    except ValueError as e:  # ConfigError, DataError, WeightsError: one line naming the kind
        print(one_line(e), file=sys.stderr)
        return 2
    except ImportError as e:  # a missing optional dependency: one line naming the extra; others keep their traceback
        if not print_missing_dependency(e):
            raise
        return 2
    except Diverged as e:  # training.core.divergence.NonFiniteLoss: the last good checkpoint is kept
        print(f"FATAL {e}", file=sys.stderr)
        return 3
    except WriteFailed as e:  # a checkpoint, metrics.json or model.keras could not be written
        print(f"FATAL {e}", file=sys.stderr, flush=True)
        return WRITE_FAILED_EXIT_CODE
    except Preempted as e:  # SIGTERM / --preemption_signal: checkpointed at the step it stopped after
        print(str(e), file=sys.stderr, flush=True)
        return PREEMPTED_EXIT_CODE
    if result.get("model_path"):  # the chief's summary (other workers export nothing)
        _print_summary(result)
    return 0


def _print_summary(r: dict) -> None:
    d = r["model_dir"]
    skipped = r["skipped_images"]
    if r["resumed_from_step"] == r["steps"]:
        print(f"\n{d} holds a finished run (step {r['steps']}): re-evaluated it only; pass a fresh "
              f"--model_dir to train again.")
    print(f"\nDone: {r['model']} on {r['dataset']}: top-1 error {r['top1_err']:.2f}% "
          f"(accuracy {100 - r['top1_err']:.2f}%), top-5 error {r['top5_err']:.2f}%, "
          f"{r['steps']} steps, batch {r['batch_size']}, {r['train_time_s']:.1f} s training, {_rate(r)}")
    if skipped["train"] or skipped["eval"]:
        print(f"Skipped undecodable images: {int(skipped['train'])} train, {int(skipped['eval'])} eval")
    print(f"  checkpoint:  {os.path.abspath(r['checkpoint'])}")
    print(f"  metrics:     {os.path.join(d, 'metrics.json')}")
    print(f"  model:       {os.path.abspath(r['model_path'])}")
    print(f"  tensorboard: {_tensorboard_command(os.path.join(d, 'logs'))}")


def _rate(r: dict) -> str:
    """Images/s of the last epoch (its first step left out); over all training when epochs are one step."""
    if r["images_per_s"] > 0 or not r["train_time_s"]:
        return f"{r['images_per_s']:.0f} images/s"
    return f"{r['steps'] * r['batch_size'] / r['train_time_s']:.0f} images/s (one step per epoch: tracing included)"


def _tensorboard_command(logdir: str) -> str:
    """How to view the logs; TensorFlow 2.21 does not install TensorBoard, so name it when it is missing."""
    import importlib.util

    view = f"tensorboard --logdir {logdir}"
    return view if importlib.util.find_spec("tensorboard") else f"pip install tensorboard && {view}"


if __name__ == "__main__":
    cli_help.run(main)
