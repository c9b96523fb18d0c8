"""Serving-graph speed: SavedModel with BN unfolded vs folded, ONNX Runtime, and timm on PyTorch, side by side.

    PYTHONPATH=. python benchmarks/serving_graph.py [--model=regnety_600mf] [--rounds=5] [--ops]

One process, random weights, RegNet at --image_size. Candidates, each at batch 1 and batch 32:
  tf_unfolded   the SavedModel as exported before BN folding (`saved_model.save(..., fold_bn=False)`)
  tf_folded     the SavedModel as exported now (BN folded into the convs), loaded signature
  tf1_session   the folded SavedModel run the way TF Serving runs it (TF1 loader + Session.run)
  onnxruntime   the folded ONNX export, ONNX Runtime CPU, 2 threads (not spinning: a shared machine)
  timm          timm's RegNet of the same name, PyTorch eager, torch.inference_mode, 2 threads
                (OpenMP's default wait unless OMP_WAIT_POLICY is set: see benchmarks/peers.py)
Rounds alternate the candidates in blocks of --runs calls, so load from other processes spreads
over all of them; each figure is the median of all calls, with the range of the per-round medians.
--ops prints which op types TensorFlow's optimizer actually runs (from a FULL_TRACE Session run):
fused conv + bias + ReLU kernels (_FusedConv2D / _MklNativeFusedConv2D) versus separate ops.
The last line prints the ratios.
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "regnety_600mf", "Zoo model.")
flags.DEFINE_integer("image_size", 224, "Input size.")
flags.DEFINE_list("batches", ["1", "32"], "Batch sizes.")
flags.DEFINE_integer("rounds", 5, "Rounds over all candidates.")
flags.DEFINE_integer("runs", 8, "Timed calls per candidate per round at batch 1 (batch > 1: a quarter, >= 1).")
flags.DEFINE_bool("timm", True, "Include timm on PyTorch when torch and timm are installed.")
flags.DEFINE_bool("onnx", True, "Include ONNX Runtime when the onnx extra is installed.")
flags.DEFINE_bool("ops", False, "Print the op types TensorFlow runs for the unfolded and folded graphs.")


def session_runner(directory: str) -> tuple[Callable[[np.ndarray], Any], Any, Any]:
    """(run(images), session, fetch name) of a SavedModel loaded as TF Serving loads it (TF1 Session)."""
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], directory)
    signature = meta.signature_def["serving_default"]
    feed = signature.inputs["images"].name
    fetch = signature.outputs["logits"].name
    return (lambda x: session.run(fetch, {feed: x})), session, (feed, fetch)


def executed_ops(directory: str, image: np.ndarray) -> collections.Counter:
    """Op types in the partition graphs TensorFlow executes for serving_default (after Grappler)."""
    import tensorflow as tf

    run, session, (feed, fetch) = session_runner(directory)
    run(image)
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE, output_partition_graphs=True)
    metadata = tf.compat.v1.RunMetadata()
    session.run(fetch, {feed: image}, options=options, run_metadata=metadata)
    session.close()
    return collections.Counter(node.op for graph in metadata.partition_graphs for node in graph.node
                               if node.op not in ("Const", "_Arg", "_Retval", "NoOp", "Identity", "_Recv", "_Send"))


def candidates(model: Any, size: int, workdir: str) -> dict[str, Callable[[np.ndarray], Any]]:
    """name -> callable(images float32 NHWC) for every available candidate."""
    import tensorflow as tf

    from tflite import saved_model

    found: dict[str, Callable[[np.ndarray], Any]] = {}
    for name, fold in (("tf_unfolded", False), ("tf_folded", True)):
        directory = os.path.join(workdir, name)
        saved_model.save(model, directory, size, fold_bn=fold)
        serve = tf.saved_model.load(directory).signatures["serving_default"]
        found[name] = lambda x, serve=serve: serve(images=tf.constant(x))["logits"].numpy()
    found["tf1_session"] = session_runner(os.path.join(workdir, "tf_folded"))[0]
    if FLAGS.onnx:
        try:
            from tflite import onnx_export
            from tflite.fold_bn import fold_batch_norm

            onnx_export.require()
            path = os.path.join(workdir, "model.onnx")
            with open(path, "wb") as f:
                f.write(onnx_export.convert(fold_batch_norm(model), size))
            sess = onnx_export.session(path, 2, spinning=False)
            found["onnxruntime"] = lambda x: sess.run(["logits"], {"images": x})[0]
        except ValueError as err:
            print(f"onnxruntime skipped: {err}")
    if FLAGS.timm:
        from peers import omp_wait_policy, timm_model

        peer = timm_model(FLAGS.model)
        if isinstance(peer, str):
            print(f"timm skipped: {peer}")
        else:
            torch, net = peer
            print(f"timm: torch {torch.__version__}, {omp_wait_policy()}")

            def run_timm(x: np.ndarray) -> Any:
                with torch.inference_mode():
                    return net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()

            found["timm"] = run_timm
    return found


def measure(found: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, rounds: int,
            runs: int) -> dict[str, tuple[float, float, float]]:
    """name -> (median ms of all calls, min and max of the per-round medians), interleaved rounds."""
    for fn in found.values():
        fn(x), fn(x)
    calls: dict[str, list[float]] = {name: [] for name in found}
    per_round: dict[str, list[float]] = {name: [] for name in found}
    for _ in range(rounds):
        for name, fn in found.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                fn(x)
                times.append((time.perf_counter() - start) * 1e3)
            calls[name] += times
            per_round[name].append(float(np.median(times)))
    return {name: (float(np.median(calls[name])), min(per_round[name]), max(per_round[name])) for name in found}


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    from keras_regnet import build, resolve_spec

    size = FLAGS.image_size
    model = build(resolve_spec(FLAGS.model, label="--model"), input_shape=(None, None, 3), classes=1000, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial BN statistics, so folding has something to fold
        if hasattr(layer, "moving_variance"):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 2.0, n)])
    with tempfile.TemporaryDirectory() as workdir:
        found = candidates(model, size, workdir)
        image = rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32)
        reference = model(image, training=False).numpy()
        for name, fn in found.items():
            diff = np.max(np.abs(np.asarray(fn(image)) - reference)) / np.max(np.abs(reference))
            print(f"{name}: max |logit diff| / max |logit| vs Keras = {diff:.1e}"
                  + (" (timm: other random weights)" if name == "timm" else ""))
        if FLAGS.ops:
            for name in ("tf_unfolded", "tf_folded"):
                ops = executed_ops(os.path.join(workdir, name), image)
                print(f"{name} executed ops: {dict(ops.most_common())}")
        print(f"\n{FLAGS.model} at {size}, TF {tf.__version__}, {os.cpu_count()} cores; ms per batch: "
              f"median (range of {FLAGS.rounds} round medians)")
        results = {}
        for batch in [int(b) for b in FLAGS.batches]:
            x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
            results[batch] = measure(found, x, FLAGS.rounds, FLAGS.runs if batch == 1 else max(1, FLAGS.runs // 4))
            for name, (median, low, high) in results[batch].items():
                print(f"  batch {batch:>3} {name:<12} {median:8.1f} ms ({low:.1f}-{high:.1f})")
    ratios = []
    for batch, res in results.items():
        ratios.append(f"b{batch} unfolded/folded {res['tf_unfolded'][0] / res['tf_folded'][0]:.2f}x")
        if "timm" in res:
            ratios.append(f"b{batch} tf_folded/timm {res['tf_folded'][0] / res['timm'][0]:.2f}x "
                          f"(tf_unfolded/timm {res['tf_unfolded'][0] / res['timm'][0]:.2f}x)")
    print("ratios (< 1: the first is faster): " + "; ".join(ratios))


if __name__ == "__main__":
    app.run(main)
