"""The mutation check: plausible bugs planted one at a time must each fail the tests that cover them.

    python tests/mutations.py                  # every mutation, 2 at a time; exit 1 if one survives
    python tests/mutations.py --list           # names, files and covering tests
    python tests/mutations.py --only=crop_centred,fold_drops_conv_bias
    python tests/mutations.py --only=crop_centred --tests=tests/training/test_data_crop.py   # other tests

Each mutation is an exact text replacement in one file of the repository. Its pattern must occur
exactly once in today's code (checked for all of them before anything runs), so a refactor that
removes or duplicates the line stops the check rather than silently disabling the mutation. Each
is applied to its own copy of the tree (no .git), where its covering tests run with `-x`, cwd and
PYTHONPATH on the copy. A mutation is caught when pytest reports a failed test (exit status 1);
a pass survives, and anything else (a collection error, a missing test id, a timeout) is an error.
Either makes the check fail. The modules are those where a silent error changes results rather
than raising: crop, recipe and weight decay, schedule, precise BN, ghost BN, fused BN, loss
scaling, BN folding, design-space laws, pyramid levels, eval crop and weight conversion.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_JOBS = 2  # the CI and development machines have 2 cores; each run is one TensorFlow process
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".pytest_cache", "build", "dist")


@dataclass(frozen=True)
class Mutation:
    """One planted bug: `old` (occurring exactly once in `path`) becomes `new`; `tests` must catch it."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    slow: bool = False  # started first, so the long runs overlap the short ones


CROP = "training/data/crop.py"
CROP_TESTS = ("tests/training/test_data_crop.py",)
RECIPE = "training/core/recipe.py"
RECIPE_TESTS = ("tests/training/test_recipe.py",)
PRECISE = "training/engines/tensorflow/precise_bn.py"
PRECISE_MIRRORED = (
    "tests/training/test_precise_bn.py::test_two_mirrored_replicas_average_the_replicas_and_ghost_groups_moments",)
JAX_EQUIVALENCE = ("tests/training/test_jax_equivalence.py::"
                   "test_two_steps_of_the_jax_engine_equal_two_steps_of_the_tensorflow_engine",)
LAYERS = "keras_regnet/layers.py"
GROUPED = "keras_regnet/grouped_gradient.py"
MODEL = "keras_regnet/model.py"
FOLD = "tflite/fold_bn.py"
FOLD_TESTS = ("tests/tflite/test_fold_bn.py",)
SPACES = "keras_regnet/design_space/spaces.py"
SPACES_TESTS = ("tests/keras_regnet/test_design_space_laws.py",)
BATCH_COST = "keras_regnet/design_space/fast_complexity.py"
BATCH_COST_TESTS = ("tests/keras_regnet/test_batch_complexity.py",)
FEATURES_TESTS = ("tests/keras_regnet/test_features.py::test_levels_are_log2_of_the_stride",)
EVAL_CROP_TESTS = ("tests/training/test_data_reference.py::test_eval_crop_is_the_reference_window_and_pixels",)
CONVERT_TESTS = ("tests/keras_regnet/test_convert.py::test_grouped_kernel_layout_and_stem_flip",)

MUTATIONS: tuple[Mutation, ...] = (
    # Random-resized crop (pycls random_sized_crop): placement, sizes, fallback.
    Mutation("crop_centred", CROP,
             "y = tf.floor(u[..., 3] * (h - h_crop))  # randint(0, H - h): 0 .. H - h - 1, and 0 when h == H\n"
             "    x = tf.floor(u[..., 4] * (w - w_crop))",
             "y = tf.floor(0.5 * (h - h_crop))\n    x = tf.floor(0.5 * (w - w_crop))", CROP_TESTS),
    Mutation("crop_x_from_rows_uniform", CROP, "x = tf.floor(u[..., 4] * (w - w_crop))",
             "x = tf.floor(u[..., 3] * (w - w_crop))", CROP_TESTS),
    Mutation("crop_offset_off_by_one", CROP, "y = tf.floor(u[..., 3] * (h - h_crop))",
             "y = tf.floor(u[..., 3] * (h - h_crop + 1))", CROP_TESTS),
    Mutation("crop_fallback_offset_floor", CROP, "tf.math.ceil((h - side) / 2), tf.math.ceil((w - side) / 2)",
             "tf.floor((h - side) / 2), tf.floor((w - side) / 2)", CROP_TESTS),
    Mutation("crop_swap_a_quarter", CROP, "swap = u[..., 2] < 0.5", "swap = u[..., 2] < 0.25", CROP_TESTS),
    # Recipe: LR rule, coupled L2, warmup + cosine schedule.
    Mutation("lr_rule_per_256", RECIPE, "REFERENCE_LR_PER_128 * batch_size / REFERENCE_BATCH",
             "REFERENCE_LR_PER_128 * batch_size / 256", RECIPE_TESTS),
    Mutation("coupled_l2_halved", RECIPE, "g + weight_decay * keras.ops.cast(v, g.dtype)",
             "g + 0.5 * weight_decay * keras.ops.cast(v, g.dtype)", RECIPE_TESTS),
    Mutation("warmup_from_zero", RECIPE, "return cosine * (schedule.warmup_factor * (1.0 - alpha) + alpha)",
             "return cosine * alpha", RECIPE_TESTS),
    Mutation("cosine_full_period", RECIPE, "cos(math.pi * step / schedule.total_steps)",
             "cos(2.0 * math.pi * step / schedule.total_steps)", RECIPE_TESTS),
    # Background checkpoints (issue 34): two writes in flight at once; a divergence stop naming the checkpoint
    # before the one still being written.
    Mutation("checkpoint_writes_overlap", "training/core/background_write.py",
             "        self.join()\n\n        def run() -> None:", "        def run() -> None:",
             ("tests/training/test_step_loop.py",)),
    Mutation("stop_before_write_joined", "training/core/loop.py",
             "        self.finish_writes()  # the last good checkpoint named below", "        pass  # ",
             ("tests/training/test_step_loop.py",)),
    # Distribution: the decay added once per replica, the loss-scale skip decided by one replica.
    Mutation("decay_per_replica", "training/engines/tensorflow/step.py", "weight_decay * scale / replicas", "weight_decay * scale",
             ("tests/training/test_distributed.py::test_two_mirrored_replicas_match_single_device",), slow=True),
    # The JAX engine: the TF engine's update (decay, momentum, schedule) and per-device BN groups.
    Mutation("decay_mask_ignored", "training/core/recipe.py",
             "if g is None or (mask is not None and not mask[i]):", "if g is None:",
             ("tests/training/test_beyond_recipe.py",), slow=True),
    Mutation("drop_path_rates_shifted", "keras_regnet/blocks.py",
             "drop_path_rate * i / (len(prefixes) - 1)", "drop_path_rate * (i + 1) / len(prefixes)",
             ("tests/keras_regnet/test_drop_path.py::test_rates_per_block_are_timms",)),
    Mutation("randaugment_rotate_range_off", "training/data/policies.py",
             '_ROTATE: Op = ("Rotate", ops.rotate, lambda lv, s, w: s * lv * 30.0)',
             '_ROTATE: Op = ("Rotate", ops.rotate, lambda lv, s, w: s * lv * 45.0)',
             ("tests/training/test_augment_policies.py::test_randaugment_ops_and_ranges_are_timms",)),
    Mutation("jax_decay_doubled", "training/engines/jax/step.py",
             "grads = coupled_l2(grads, state.trainable, weight_decay, mask)",
             "grads = coupled_l2(grads, state.trainable, 2 * weight_decay, mask)", JAX_EQUIVALENCE, slow=True),
    Mutation("jax_loss_not_over_global_batch", "training/engines/jax/step.py",
             "return metrics.loss_sum / global_batch, (metrics, non_trainable)",
             "return metrics.loss_sum / metrics.valid / 2, (metrics, non_trainable)", JAX_EQUIVALENCE, slow=True),
    Mutation("jax_precise_bn_ignores_groups", "training/engines/jax/step.py",
             'group = getattr(layer, "ghost_batch_size", None)', "group = None",
             ("tests/training/test_jax_equivalence.py::test_precise_bn_on_two_devices_averages_the_devices_moments",)),
    Mutation("jax_bn_over_whole_batch", "training/engines/jax/assembly.py", "return cfg.batch_size // devices",
             "return None", ("tests/training/test_jax_engine.py::test_the_step_model_normalises_each_devices_share",)),
    Mutation("loss_scale_not_all_reduced", "training/engines/tensorflow/loss_scale.py",
             "return tf.equal(context.all_reduce(tf.distribute.ReduceOp.SUM, bad), 0.0)", "return finite",
             ("tests/training/test_loss_scale.py::test_one_replica_overflow_skips_the_step_on_every_replica",),
             slow=True),
    # Precise BN: replica average, ghost groups, average over batches.
    Mutation("precise_bn_replica_sum", PRECISE, "strategy.reduce(tf.distribute.ReduceOp.MEAN, s, axis=None)",
             "strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None)", PRECISE_MIRRORED),
    Mutation("precise_bn_ignores_ghost_groups", PRECISE, "if isinstance(layer, GhostBatchNormalization):",
             "if False and isinstance(layer, GhostBatchNormalization):", PRECISE_MIRRORED),
    Mutation("precise_bn_last_batch_only", PRECISE, "np.mean(values, axis=0) for values in zip(*batches)",
             "values[-1] for values in zip(*batches)",
             ("tests/training/test_precise_bn.py::test_moving_statistics_become_the_average_of_the_batch_statistics",)),
    # Ghost BN and the fused BN kernel.
    Mutation("ghost_groups_transposed", LAYERS, "ops.reshape(x, (-1, self.ghost_batch_size, *shape[1:]))",
             "ops.reshape(x, (self.ghost_batch_size, -1, *shape[1:]))", ("tests/keras_regnet/test_ghost_bn.py",)),
    Mutation("fused_bn_default_epsilon", LAYERS, "variance=empty, epsilon=self.epsilon,",
             "variance=empty, epsilon=1e-3,", ("tests/keras_regnet/test_fused_batch_norm.py",)),
    Mutation("fused_bn_unbiased_variance", LAYERS, "variance = variance * (count - 1.0) / tf.maximum(count, 1.0)",
             "variance = variance", ("tests/keras_regnet/test_fused_batch_norm.py",)),
    # Grouped convs without oneDNN and dtype policies (float64, JAX x64).
    Mutation("grouped_fallback_groups_reversed", GROUPED, "for x, w in pairs], axis=-1)",
             "for x, w in pairs][::-1], axis=-1)",
             ("tests/keras_regnet/test_grouped_gradient.py::test_per_group_gradient_equals_the_stock_layer",)),
    Mutation("grouped_float64_native", GROUPED, 'frozenset({"float32", "bfloat16"})',
             'frozenset({"float32", "bfloat16", "float64"})', ("tests/keras_regnet/test_dtype_policies.py::test_float64_fit_trains",)),
    Mutation("fused_bn_float64_in_kernel", LAYERS, "and keras.backend.standardize_dtype(inputs.dtype) in self.KERNEL_DTYPES",
             "and True", ("tests/keras_regnet/test_dtype_policies.py::test_fused_batch_norm_computes_float64_in_float64",)),
    Mutation("jax_float64_without_x64", MODEL, 'if "float64" not in wanted or keras.backend.backend() != "jax":',
             "if True:", ("tests/keras_regnet/test_dtype_policies.py::test_jax_float64_fit_needs_x64_and_says_how_to_turn_it_on",)),
    # BN folding for export.
    Mutation("fold_drops_conv_bias", FOLD, "bias = layer.bias.numpy() if layer.use_bias else None", "bias = None",
             FOLD_TESTS),
    Mutation("fold_epsilon_zero", FOLD, "bn.epsilon)))", "0.0)))", FOLD_TESTS),
    Mutation("fold_pycls_epsilon_always", FOLD, "bn.epsilon)))", "1e-5)))", FOLD_TESTS),
    Mutation("fold_mean_sign", FOLD, "(b - mean.astype(np.float64)) * scale", "(b + mean.astype(np.float64)) * scale",
             FOLD_TESTS),
    # Design-space laws (pycls sweep samplers).
    Mutation("log_uniform_is_uniform", SPACES,
             "np.exp(rng.uniform(math.log(lo - min(q, lo / 2)), math.log(hi), size=shape))",
             "rng.uniform(lo - min(q, lo / 2), hi, size=shape)", SPACES_TESTS),
    Mutation("log_uniform_rounds_to_nearest", SPACES, "np.clip(np.ceil(x / q) * q, lo, hi)",
             "np.clip(np.round(x / q) * q, lo, hi)", SPACES_TESTS),
    Mutation("stage_ends_floor", "keras_regnet/regnet.py", "np.ceil(scale * (root * power - 1.0))",
             "np.floor(scale * (root * power - 1.0))", BATCH_COST_TESTS),
    # Batch costing follows the walk (every block type, per-stage stride, shortcut choice).
    Mutation("batch_cost_always_projects", BATCH_COST, "stride, project=choice)", "stride, project=True)",
             BATCH_COST_TESTS),
    Mutation("batch_cost_paper_strides", BATCH_COST,
             "stride = _compact(np.where(present, stages.stride_array()[:, k], 1))", "stride = PAPER_STRIDE",
             BATCH_COST_TESTS),
    # Pyramid levels (keras-hub's pyramid_outputs).
    Mutation("pyramid_level_off_by_one", "keras_regnet/features.py", "level = math.log2(stride)",
             "level = math.log2(2 * stride)", FEATURES_TESTS),
    Mutation("pyramid_shallower_map_wins", "keras_regnet/features.py",
             'levels[_level(stride, model.name)] = model.get_layer(f"s{stage}_b{depth}_relu").output',
             'levels.setdefault(_level(stride, model.name), model.get_layer(f"s{stage}_b{depth}_relu").output)',
             FEATURES_TESTS),
    # Output stride (timm's dilation rule) and freezing.
    Mutation("dilated_first_block_takes_the_stage_dilation", "keras_regnet/layer_records.py",
             "first = geo.first_dilation if b == 1 else geo.dilation", "first = geo.dilation",
             ("tests/keras_regnet/test_output_stride.py::test_block_records_dilate_the_3x3_convs_and_keep_the_projection",
              "tests/keras_regnet/test_output_stride.py::test_dilated_features_equal_timms_at_output_stride_16_golden")),
    Mutation("bn_inference_ignored", "keras_regnet/freezing.py", "    if bn_inference:\n", "    if False:\n",
             ("tests/keras_regnet/test_freezing.py::test_bn_inference_holds_every_bn_while_the_convolutions_train",)),
    # Eval crop (pycls scale_and_center_crop).
    Mutation("eval_crop_offset_floor", "keras_regnet/pretrained/eval_crop.py", "top = (new_hw[0] - size + 1) // 2",
             "top = (new_hw[0] - size) // 2", EVAL_CROP_TESTS),
    Mutation("eval_crop_longer_side_rounded", "keras_regnet/pretrained/eval_crop.py", "tf.floor(w / h * side)",
             "tf.round(w / h * side)", EVAL_CROP_TESTS),
    Mutation("eval_crop_antialiased", "keras_regnet/pretrained/eval_crop.py", "antialias=False", "antialias=True",
             EVAL_CROP_TESTS),
    # Weight conversion (PyTorch layouts, BGR stem).
    Mutation("stem_not_flipped_to_rgb", "keras_regnet/pretrained/to_keras.py", "kernel = kernel[:, :, ::-1, :]",
             "kernel = kernel", CONVERT_TESTS),
    Mutation("conv_kernel_hw_swapped", "keras_regnet/pretrained/to_keras.py", "np.transpose(kernel, (2, 3, 1, 0))",
             "np.transpose(kernel, (3, 2, 1, 0))", CONVERT_TESTS),
)


class MutationError(ValueError):
    """A mutation that cannot be applied to today's code, or a bad command line."""


def check_patterns(mutations: tuple[Mutation, ...], root: str = ROOT) -> None:
    """Each mutation's pattern occurs exactly once in its file; MutationError naming every one that does not."""
    problems = []
    for m in mutations:
        with open(os.path.join(root, m.path), encoding="utf-8") as f:
            count = f.read().count(m.old)
        if count != 1:
            problems.append(f"{m.name}: {m.old!r} occurs {count} times in {m.path} (must be exactly once)")
    if problems:
        raise MutationError("; ".join(problems))


def apply(mutation: Mutation, root: str) -> None:
    """Replace the mutation's pattern in the copy at `root`."""
    path = os.path.join(root, mutation.path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(mutation.old, mutation.new, 1))


@dataclass(frozen=True)
class Outcome:
    """How one mutation fared: caught / SURVIVED / ERROR, the run time and the test that tripped."""

    mutation: Mutation
    verdict: str
    seconds: float
    detail: str


def run_one(mutation: Mutation, tests: tuple[str, ...], timeout: float) -> Outcome:
    """Copy the tree, plant the mutation, run `tests` there with -x and judge pytest's exit status."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutation.name}-") as tmp:
        copy = os.path.join(tmp, "repo")
        shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
        apply(mutation, copy)
        env = {**os.environ, "PYTHONPATH": copy, "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", *tests]
        try:
            done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(mutation, "ERROR", time.monotonic() - start, f"timed out after {timeout:.0f} s")
    seconds = time.monotonic() - start
    failed = re.findall(r"^FAILED (\S+)", done.stdout, flags=re.MULTILINE)
    if done.returncode == 1 and failed:
        return Outcome(mutation, "caught", seconds, failed[0])
    if done.returncode == 0:
        return Outcome(mutation, "SURVIVED", seconds, "every covering test passed")
    tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return Outcome(mutation, "ERROR", seconds, f"pytest exit status {done.returncode}: {tail}")


def select(only: str | None) -> tuple[Mutation, ...]:
    """The mutations named in --only (comma-separated), or all; MutationError naming unknown ones."""
    if not only:
        return MUTATIONS
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MutationError(f"--only: unknown mutation(s) {', '.join(unknown)}; --list shows the {len(known)} names")
    return tuple(known[n] for n in names)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; errors name the flag and what is allowed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated mutation names (default: all)")
    parser.add_argument("--tests", help="comma-separated test files/ids to run instead of each mutation's own")
    parser.add_argument("--jobs", type=int, default=MAX_JOBS, help=f"mutations run at once, 1-{MAX_JOBS}")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per mutation")
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= MAX_JOBS:
        parser.error(f"--jobs={args.jobs} is not allowed; choose 1 to {MAX_JOBS}")
    if args.timeout <= 0:
        parser.error(f"--timeout={args.timeout} must be a positive number of seconds")
    return args


def main(argv: list[str]) -> int:
    """Run the selected mutations, print one line each and a summary; 0 only if every one is caught."""
    args = parse_args(argv)
    try:
        mutations = select(args.only)
        check_patterns(mutations)
    except MutationError as err:
        print(f"mutations.py: {err}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutations:
            print(f"{m.name:34s} {m.path:36s} {' '.join(m.tests)}")
        return 0
    override = tuple(t.strip() for t in args.tests.split(",")) if args.tests else None
    start = time.monotonic()
    order = sorted(mutations, key=lambda m: not m.slow)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, m, override or m.tests, args.timeout) for m in order]
        outcomes = []
        for future in futures:
            outcome = future.result()
            outcomes.append(outcome)
            print(f"{outcome.verdict:8s} {outcome.mutation.name:34s} {outcome.seconds:6.1f} s  {outcome.detail}",
                  flush=True)
    bad = [o for o in outcomes if o.verdict != "caught"]
    print(f"{len(outcomes) - len(bad)} of {len(outcomes)} mutations caught in {time.monotonic() - start:.0f} s "
          f"({args.jobs} at a time)")
    if bad:
        print(f"not caught: {', '.join(f'{o.mutation.name} ({o.verdict})' for o in bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
