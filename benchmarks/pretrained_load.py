"""First and later `weights="imagenet"` loads: models built and seconds, this tree vs an earlier commit.

    python benchmarks/pretrained_load.py [--model regnety_600mf] [--baseline_ref 59b8b80]

No network: each run writes a local stand-in for the reference checkpoint (the model's random
initial weights in timm naming, as `timm/<arch>.pycls_in1k/model.safetensors` holds them) into a
fresh Keras cache, as if downloaded, then times `build(spec, weights="imagenet")` twice: the first
call converts and caches, the second reuses the cache. Models built are counted as calls of
`keras_regnet.blocks.stem` (every RegNet build makes exactly one stem). The baseline is the same
script run on `git archive <ref>` in a subprocess, side by side; the last lines print the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _standin(spec, raw_path: str) -> None:
    """Write the spec's random initial weights as a timm-named safetensors file."""
    import numpy as np
    from safetensors.numpy import save_file

    from keras_regnet import build
    from keras_regnet.checkpoint_converter import layer_map

    model = build(spec, include_top=True, classifier_activation=None, include_preprocessing=False)
    weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    state = {}
    for entry in layer_map(spec, "timm"):
        for key, value in zip(entry.keys(), weights[entry.layer]):
            if value.ndim == 4:
                value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            elif value.ndim == 2:
                value = value.T
            state[key] = np.ascontiguousarray(value, dtype=np.float32)
    os.makedirs(os.path.dirname(raw_path), exist_ok=True)
    save_file(state, raw_path)


def measure(model_name: str) -> dict:
    """Models built and seconds of the first and second imagenet load (in this process's tree)."""
    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="keras_home_")
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # a download attempt would fail loudly
    import keras_regnet
    from keras_regnet import blocks, resolve_spec
    from keras_regnet.model import build
    from keras_regnet.pretrained.tags import default_preset
    from keras_regnet.pretrained.cache import cached_paths

    spec = resolve_spec(model_name, label="--model")
    _standin(spec, cached_paths(default_preset(spec.name))[0])
    built: list[str] = []
    stem = blocks.stem
    blocks.stem = lambda *a, **k: (built.append(a[1].name), stem(*a, **k))[1]
    out = {"tree": os.path.dirname(os.path.dirname(os.path.abspath(keras_regnet.__file__)))}
    for label in ("first", "second"):
        built.clear()
        start = time.perf_counter()
        build(spec, weights="imagenet")
        out[f"{label}_s"] = time.perf_counter() - start
        out[f"{label}_models_built"] = len(built)
    return out


def _run(tree: str, model_name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": tree, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", "--model", model_name],
                            cwd=tree, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="regnety_600mf")
    parser.add_argument("--baseline_ref", default="59b8b80",
                        help="git commit to compare with (default: before one-loader refactor)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.model)))
        return
    with tempfile.TemporaryDirectory() as baseline:
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.baseline_ref], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", baseline], input=archive.stdout, check=True)
        before = _run(baseline, args.model)
    after = _run(ROOT, args.model)
    print(f"{args.model}, weights='imagenet' from a local stand-in checkpoint (no network)")
    print(f"{'':28s}{'models built':>14s}{'seconds':>10s}")
    for label, row in ((f"before ({args.baseline_ref}), first", before), ("after, first", after)):
        print(f"{label:28s}{row['first_models_built']:>14d}{row['first_s']:>10.2f}")
    for label, row in ((f"before ({args.baseline_ref}), second", before), ("after, second", after)):
        print(f"{label:28s}{row['second_models_built']:>14d}{row['second_s']:>10.2f}")
    print(f"first load: before/after time ratio {before['first_s'] / after['first_s']:.2f}x, models built "
          f"{before['first_models_built']} -> {after['first_models_built']}")
    print(f"second load: before/after time ratio {before['second_s'] / after['second_s']:.2f}x")


if __name__ == "__main__":
    main()
