"""`python -m keras_regnet.convert`: a reference checkpoint -> a Keras weights file or keras-hub preset.

Flags and app only; the converter library is `keras_regnet.checkpoint_converter`, which defines no
absl flags, so importing it never clashes with another app's."""

from __future__ import annotations

import os
from typing import Sequence

from absl import app, flags

from keras_regnet import cli_help
from keras_regnet.pretrained.state_dict import CHECKPOINT_SUFFIXES, NAMINGS
from keras_regnet.errors import cli_boundary

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "Zoo model name in any spelling (regnety_600mf, RegNetY-600MF, "
                    "RegNetY006), a built-in, a NetSpec JSON file (any case of .json) or inline JSON.")
flags.DEFINE_string("checkpoint", None, "Reference checkpoint: .safetensors or .npz; .pth/.pyth "
                    "need torch (loaded with weights_only=True); or imagenet for a zoo model's "
                    "reference ImageNet weights (downloaded and cached as weights='imagenet').")
flags.DEFINE_string("output", None, "Output file: .weights.h5 (weights) or .keras (whole model). "
                    "Written atomically.")
flags.DEFINE_string("to_preset", None, "Also (or instead of --output) write a keras-hub preset directory that "
                    "keras_hub.models.ImageClassifier.from_preset loads (needs the [hub] extra).")
flags.DEFINE_enum("naming", "auto", ("auto",) + NAMINGS,
                  "State-dict naming of the checkpoint; auto detects it from the keys.")
flags.DEFINE_enum("bgr_to_rgb", "auto", ("auto", "true", "false"),
                  "Reverse the stem kernel's input channels. auto: yes for pycls naming (original "
                  "pycls checkpoints were trained on BGR), no for timm (already RGB).")
flags.mark_flags_as_required(["model", "checkpoint"])
flags.register_multi_flags_validator(["output", "to_preset"], lambda f: bool(f["output"] or f["to_preset"]),
                                     "pass --output (a .weights.h5 / .keras file), --to_preset (a directory) or both")


def _named_weights(path: str | None) -> bool:
    """imagenet, or timm's tag / tagged name of zoo weights (regnety_006.pycls_in1k)."""
    from keras_regnet.pretrained.tags import split_tagged, tags

    return path in (None, "imagenet") or path in tags() or (not os.path.exists(path) and split_tagged(path) is not None)


flags.register_validator("checkpoint", lambda p: _named_weights(p) or p.lower().endswith(CHECKPOINT_SUFFIXES),
                         f"--checkpoint must be imagenet, a tagged name (regnety_006.pycls_in1k) or end in one of "
                         f"{', '.join(CHECKPOINT_SUFFIXES)}")
flags.register_validator("checkpoint", lambda p: _named_weights(p) or os.path.isfile(p),
                         "--checkpoint must be an existing file (or imagenet)")
flags.register_validator("output", lambda p: p is None or p.endswith((".weights.h5", ".keras")),
                         "--output must end in .weights.h5 or .keras")


def run(argv: Sequence[str]) -> None:
    """Convert --checkpoint for --model into --output and print a one-line summary."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from keras_regnet.checkpoint_converter import converted_model, save_weights_atomic
    from keras_regnet.resolve import resolve_spec

    naming = None if FLAGS.naming == "auto" else FLAGS.naming
    flip = {"auto": None, "true": True, "false": False}[FLAGS.bgr_to_rgb]
    spec = resolve_spec(FLAGS.model, label="--model")  # a bad name: the resolver's one line, as in every CLI
    try:
        model, spec = converted_model(spec, FLAGS.checkpoint, naming=naming, bgr_to_rgb=flip)
    except ValueError as err:
        raise type(err)(f"cannot convert --checkpoint={FLAGS.checkpoint} for --model={FLAGS.model}: {err}") from err
    if FLAGS.output:
        out = save_weights_atomic(model, FLAGS.output)
        print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB) from {FLAGS.checkpoint}")
    if FLAGS.to_preset:
        from keras_regnet.hub import save_preset
        from keras_regnet.pretrained.tags import eval_settings

        save_preset(model, FLAGS.to_preset, spec=spec, settings=eval_settings(FLAGS.model, FLAGS.checkpoint))
        print(f"wrote keras-hub preset {FLAGS.to_preset} from {FLAGS.checkpoint}")


def launch() -> None:
    cli_help.run(cli_boundary(run))


if __name__ == "__main__":
    launch()
