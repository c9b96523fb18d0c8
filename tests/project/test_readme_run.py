"""The README runner of CI (.ci/readme_run.py): which commands and python blocks it reads from
README.md, how it joins them, what it skips and why; and that every skip still names a README command."""

from __future__ import annotations

import importlib.util
import sys

from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT
_spec = importlib.util.spec_from_file_location("readme_run", ROOT / ".ci" / "readme_run.py")
rr = importlib.util.module_from_spec(_spec)
sys.modules["readme_run"] = rr  # dataclasses look their module up
_spec.loader.exec_module(rr)

SAMPLE = """# title

```bash
echo before any section
```

## One

text `inline code` is not run

```python
import math
```

```python
x = math.pi
```

```bash
pip install ".[onnx]"
python -m tflite.export --model=m \\
    --formats=onnx
python -m pytest
# python -m pytest in a comment stays
```

```text
not run
```

## Two

```python
print(1)
```
"""


def test_sections_blocks_and_steps():
    sections = rr.parse_sections(SAMPLE)
    assert [s.title for s in sections] == ["(top)", "One", "Two"]
    assert [lang for lang, _ in sections[1].blocks] == ["python", "python", "bash"]
    steps = rr.steps(sections[1])
    assert steps[0] == ("python", "import math\nx = math.pi")  # consecutive python blocks: one session
    assert steps[1][0] == "bash"


def test_continuations_join_and_skips_are_replaced_by_an_echo_with_their_reason():
    block = rr.parse_sections(SAMPLE)[1].blocks[2][1]
    assert rr.logical_lines(block)[1] == "python -m tflite.export --model=m      --formats=onnx"
    script, skipped = rr.runnable_bash(block)
    assert skipped == [("python -m pytest", rr.SKIP[r"python -m pytest"])]
    lines = script.splitlines()
    assert lines[0] == 'pip install ".[onnx]"' and lines[2] == "echo 'skipped: python -m pytest'"
    assert lines[3] == "# python -m pytest in a comment stays"


def test_a_skip_that_matches_no_command_is_reported_stale():
    sections = rr.parse_sections(SAMPLE)
    assert set(rr.stale_skips(sections)) == set(rr.SKIP) - {r"python -m pytest"}


def test_the_readme_has_no_stale_skip_and_names_its_extras_where_it_needs_them():
    sections = rr.parse_sections((ROOT / "README.md").read_text())
    assert rr.stale_skips(sections) == []
    for section in sections:
        installed = []
        for lang, block in section.blocks:
            for line in rr.logical_lines(block) if lang == "bash" else []:
                installed += [e for e in ("qat", "onnx", "jax") if f'pip install ".[{e}]"' in line]
                if "--formats=" in line and "qat_int8" in line:
                    assert "qat" in installed, (section.title, line)
                if "--formats=" in line and "onnx" in line.split("--formats=")[1].split()[0]:
                    assert "onnx" in installed, (section.title, line)
