"""The repository ships the Apache-2.0 text that setup.py declares, and the built distributions carry it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.helpers.paths import REPO_ROOT


def test_license_file_is_the_apache_2_text():
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("Copyright 2026 The keras-regnet authors\n")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and text.rstrip().endswith("limitations under the License.")
    assert 'license="Apache-2.0"' in (REPO_ROOT / "setup.py").read_text(encoding="utf-8")


def _build(tmp_path, *command: str) -> None:
    """Run setup.py's command in a copy holding setup.py, README.md and LICENSE: the metadata, not the code."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name in ("setup.py", "README.md", "LICENSE"):
        shutil.copy(REPO_ROOT / name, src / name)
    result = subprocess.run([sys.executable, "setup.py", "-q", *command, "-d", str(tmp_path / "dist")],
                            cwd=src, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Unknown distribution option" not in result.stderr, result.stderr[-2000:]


def test_sdist_carries_the_license(tmp_path):
    _build(tmp_path, "sdist", "--formats=gztar")
    (archive,) = (tmp_path / "dist").glob("keras[-_]regnet-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        pkg_info = tar.extractfile(next(m for m in tar.getmembers() if m.name.count("/") == 1
                                        and m.name.endswith("/PKG-INFO"))).read().decode()
    assert "LICENSE" in names
    assert "License-File: LICENSE" in pkg_info


def test_wheel_carries_the_license(tmp_path):
    try:
        import wheel  # noqa: F401  (setuptools < 70.1 builds wheels through the wheel package)
    except ImportError:
        pytest.importorskip("setuptools.command.bdist_wheel")
    _build(tmp_path, "bdist_wheel")
    (archive,) = (tmp_path / "dist").glob("keras_regnet-*.whl")
    with zipfile.ZipFile(archive) as whl:
        names = whl.namelist()
        licenses = [n for n in names if n.endswith(".dist-info/LICENSE") or n.endswith(".dist-info/licenses/LICENSE")]
        assert licenses, names
        assert whl.read(licenses[0]).decode().startswith("Copyright 2026 The keras-regnet authors\n")
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-File: LICENSE" in metadata
