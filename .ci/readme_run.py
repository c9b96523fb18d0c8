"""Run README.md as written: its own bash commands and python blocks, read from README.md itself.

A second virtualenv gets `pip install .` only. Each `## ` section then runs in a venv of its own
layered over that one (a .pth file points at it), so a section has exactly the extras its own
`pip install ".[x]"` lines install, from the line where it installs them. Sections run in order in
one copy of the checkout, as a reader goes top to bottom. Consecutive python blocks of a section run
as one script (a reader's one session) against the installed package. What a reader supplies is
generated: $HOME points at a folder holding photos/ and my_images/ (3 classes x 16 JPEGs each),
my_spec.json (a small AnyNet) and model.safetensors (a reference checkpoint) lie in the checkout,
and the ImageNet checkpoints the README downloads are local stand-ins (tests/helpers/standin.py) already in
the Keras cache; any other download fails (HF_ENDPOINT points at a closed port). Commands that
cannot run here are listed in SKIP, each with its reason; an entry that no longer matches a README
command is an error, so the list stays true.

    python .ci/readme_run.py [--base_venv DIR] [--sections REGEX] [--workdir DIR]
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
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # this process makes the photos with TensorFlow
# A README command (regex on one logical line) -> why this step cannot run it.
SKIP = {
    r"python -m pytest": "the test suite: .ci/run's step before this one ran it",
    r"/data/imagenet": "needs ImageNet on disk (150 GB); the cluster path is tested on generated ImageNet-format "
                       "TFRecords (tests/training/test_cluster_path.py)",
    r"benchmarks/train_step\.py": "a benchmark (minutes of timing on 2 cores); the README states the machine "
                                  "and date of its figures",
    r"training\.data_service --role=": "tf.data service servers run until stopped, each on its own machine; "
                                       "tests/training/test_data_service.py starts a dispatcher and two workers on "
                                       "127.0.0.1 and trains through them",
    r"tensorflow_model_server": "TF Serving's server binary comes from Google's apt repository or Docker, neither "
                                "reachable here; tests/tflite/test_serving_warmup.py replays every warm-up request "
                                "against the exported signatures in a new process",
}
BLOCK_TIMEOUT_S = 1800
PHOTO_CLASSES = ("cat", "dog", "bird")
PHOTOS_PER_CLASS = 16
STANDIN_MODEL = "regnety_600mf"  # the model the README loads weights="imagenet" for


@dataclass
class Section:
    """One `## ` section of the README: its title and its fenced bash/python blocks, in order."""

    title: str
    blocks: list[tuple[str, str]] = field(default_factory=list)


def parse_sections(text: str) -> list[Section]:
    """The README's `## ` sections with their ```bash and ```python blocks (other fences ignored)."""
    sections = [Section("(top)")]
    lang = None
    lines: list[str] = []
    for line in text.splitlines():
        if lang is None and line.startswith("## "):
            sections.append(Section(line[3:].strip()))
        elif lang is None and line.startswith("```"):
            lang, lines = line[3:].strip(), []
        elif lang is not None and line.startswith("```"):
            if lang in ("bash", "python"):
                sections[-1].blocks.append((lang, "\n".join(lines)))
            lang = None
        elif lang is not None:
            lines.append(line)
    return [s for s in sections if s.blocks]


def logical_lines(block: str) -> list[str]:
    """A bash block's lines with backslash continuations joined."""
    out, pending = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            out.append(pending + line)
            pending = ""
    return out + ([pending] if pending else [])


def skip_reason(line: str) -> str | None:
    """Why SKIP leaves this command out, or None to run it (comment lines are never skipped)."""
    if line.lstrip().startswith("#"):
        return None
    return next((why for pattern, why in SKIP.items() if re.search(pattern, line)), None)


def runnable_bash(block: str) -> tuple[str, list[tuple[str, str]]]:
    """The block with skipped commands replaced by an echo, and the (command, reason) pairs skipped."""
    kept, skipped = [], []
    for line in logical_lines(block):
        why = skip_reason(line)
        if why is None:
            kept.append(line)
        else:
            skipped.append((line.strip(), why))
            kept.append(f"echo {shell_quote('skipped: ' + line.strip())}")
    return "\n".join(kept), skipped


def shell_quote(text: str) -> str:
    """`text` as one single-quoted bash word."""
    return "'" + text.replace("'", "'\\''") + "'"


def stale_skips(sections: list[Section]) -> list[str]:
    """SKIP patterns that match no command of the README (the list must stay true)."""
    commands = [line for s in sections for lang, b in s.blocks if lang == "bash" for line in logical_lines(b)]
    return [p for p in SKIP if not any(re.search(p, c) and not c.lstrip().startswith("#") for c in commands)]


def steps(section: Section) -> list[tuple[str, str]]:
    """(lang, source) to run: bash blocks one by one, consecutive python blocks joined into one script."""
    out: list[tuple[str, str]] = []
    for lang, block in section.blocks:
        if lang == "python" and out and out[-1][0] == "python":
            out[-1] = ("python", out[-1][1] + "\n" + block)
        else:
            out.append((lang, block))
    return out


# Orchestration -----------------------------------------------------------------------------------
def sh(args: list[str], **kw: object) -> None:
    """Run a setup command; any failure stops the step."""
    subprocess.run(args, check=True, **kw)


def copy_checkout(dest: str) -> None:
    """The tracked files of this checkout (as a fresh clone holds them) copied to `dest`."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def make_inputs(home: str, checkout: str) -> None:
    """What a reader brings: photo folders, a spec file, a reference checkpoint, cached ImageNet weights."""
    # This checkout's tests package, ahead of any top-level `tests` a dependency installs in site-packages.
    sys.path.insert(0, ROOT)
    from tests.helpers.standin import place_imagenet_standin, write_reference_checkpoint

    for folder, seed in (("photos", 0), ("my_images", 1)):
        write_photos(os.path.join(home, folder), seed)
    from keras_regnet.spec import make_spec

    spec = make_spec(depths=[1, 1, 2], widths=[16, 32, 64], group_widths=8, block="y", se_ratio=0.25,
                     stem_width=16, name="my_spec")
    with open(os.path.join(checkout, "my_spec.json"), "w", encoding="utf-8") as f:
        f.write(spec.to_json())
    write_reference_checkpoint(os.path.join(checkout, "model.safetensors"), STANDIN_MODEL)
    place_imagenet_standin(os.path.join(home, ".keras"), STANDIN_MODEL)
    os.environ.pop("KERAS_HOME", None)


def write_photos(root: str, seed: int) -> None:
    """JPEGs root/<class>/001.jpg ...: class k is brightest in colour channel k (learnable, tiny)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for k, name in enumerate(PHOTO_CLASSES):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(PHOTOS_PER_CLASS):
            image = rng.integers(0, 80, (96, 128, 3)).astype("uint8")
            image[..., k % 3] += 150
            with open(os.path.join(root, name, f"{i + 1:03d}.jpg"), "wb") as f:
                f.write(tf.io.encode_jpeg(image).numpy())


def make_base_venv(path: str, checkout: str) -> None:
    """The second virtualenv: `pip install .` and nothing else."""
    sh([sys.executable, "-m", "venv", path])
    sh([os.path.join(path, "bin", "pip"), "install", "--quiet", checkout])


def make_section_venv(path: str, base: str) -> None:
    """A venv that sees the base venv's packages (through a .pth file) and installs its own extras."""
    sh([os.path.join(base, "bin", "python"), "-m", "venv", path])
    with open(os.path.join(site_packages(path), "readme_base.pth"), "w", encoding="utf-8") as f:
        f.write(site_packages(base) + "\n")


def site_packages(venv: str) -> str:
    """The purelib (site-packages) folder of a venv, as its own interpreter reports it."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([os.path.join(venv, "bin", "python"), "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def section_env(venv: str, home: str) -> dict[str, str]:
    """The environment a section's commands see: its venv active, the generated $HOME, no network for weights."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "KERAS_HOME", "TF_CONFIG")}
    env.update(HOME=home, VIRTUAL_ENV=venv, PATH=os.path.join(venv, "bin") + os.pathsep + env.get("PATH", ""),
               HF_ENDPOINT="http://127.0.0.1:9", TF_CPP_MIN_LOG_LEVEL="2", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", os.path.expanduser("~/.cache/pip")), MPLBACKEND="Agg")
    user_pip_conf = os.path.expanduser("~/.config/pip/pip.conf")  # the real $HOME's pip settings still apply
    if "PIP_CONFIG_FILE" not in env and os.path.isfile(user_pip_conf):
        env["PIP_CONFIG_FILE"] = user_pip_conf
    return env


def run_step(lang: str, source: str, venv: str, checkout: str, env: dict[str, str], log: str) -> int:
    """Run one bash block or python script; output appended to `log`; returns the exit code."""
    if lang == "bash":
        args = ["bash", "-c", "set -euo pipefail -x\n" + source]
    else:
        script = log[:-4] + ".py"
        with open(script, "w", encoding="utf-8") as f:
            f.write(source + "\n")
        args = [os.path.join(venv, "bin", "python"), script]  # the installed package, not the checkout
    with open(log, "a", encoding="utf-8") as out:
        try:
            return subprocess.run(args, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=BLOCK_TIMEOUT_S, check=False).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n[readme_run] timed out after {BLOCK_TIMEOUT_S} s\n")
            return 124


def run_sections(sections: list[Section], work: str, base: str, checkout: str, home: str) -> list[str]:
    """Run every section; print one line each; return the titles of those that failed."""
    failed = []
    for n, section in enumerate(sections):
        t0 = time.perf_counter()
        venv = os.path.join(work, "venvs", f"{n:02d}")
        make_section_venv(venv, base)
        log = os.path.join(work, "logs", f"{n:02d}.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        env = section_env(venv, home)
        code, skipped = 0, []
        for lang, source in steps(section):
            if lang == "bash":
                source, dropped = runnable_bash(source)
                skipped += dropped
            code = run_step(lang, source, venv, checkout, env, log)
            if code:
                break
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"[{status}] {section.title} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for command, why in skipped:
            print(f"    skipped: {command}\n      why: {why}", flush=True)
        if code:
            failed.append(section.title)
            with open(log, encoding="utf-8") as f:
                print("    " + "\n    ".join(f.read().splitlines()[-60:]), flush=True)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    parser.add_argument("--base_venv", help="reuse this venv (made with `pip install .` only) as the base")
    parser.add_argument("--sections", default="", help="run only sections whose title matches this regex")
    parser.add_argument("--workdir", help="keep the checkout copy, venvs and logs here (default: a temp dir)")
    args = parser.parse_args()
    with open(args.readme, encoding="utf-8") as f:
        sections = parse_sections(f.read())
    stale = stale_skips(sections)
    if stale:
        print(f"readme_run: SKIP entries match no README command: {stale}; update .ci/readme_run.py")
        return 1
    sections = [s for s in sections if re.search(args.sections, s.title)]
    work = args.workdir or tempfile.mkdtemp(prefix="readme_run-")
    checkout, home = os.path.join(work, "checkout"), os.path.join(work, "home")
    t0 = time.perf_counter()
    copy_checkout(checkout)
    if args.readme != os.path.join(ROOT, "README.md"):
        shutil.copy2(args.readme, os.path.join(checkout, "README.md"))
    make_inputs(home, checkout)
    base = args.base_venv or os.path.join(work, "base")
    if not args.base_venv:
        make_base_venv(base, checkout)
    print(f"readme_run: {len(sections)} sections, base venv {base} ready after {time.perf_counter() - t0:.0f} s",
          flush=True)
    failed = run_sections(sections, work, base, checkout, home)
    print(f"README as written: {len(sections) - len(failed)} of {len(sections)} sections ran, "
          f"{len(failed)} failed{': ' + '; '.join(failed) if failed else ''} ({time.perf_counter() - t0:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
