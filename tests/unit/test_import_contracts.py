"""The import-linter contracts in pyproject.toml, run on a copy of the package with a probe module added.

`make test` runs `lint-imports` on the tree itself; these tests pin down what the layers contract
says about the top-level `kitty_auth.spec_kitty2` re-export for the spec-kitty host: it may import
the entrypoints (it sits above them, as an optional layer, so the contract also holds before the
module exists), and the entrypoints may not import it. The second test also shows that the copy,
not the installed package, is what gets checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The scripts folder: bin/ beside python in a venv, Scripts\ (and a .exe) in a Windows install.
LINT_IMPORTS = Path(sysconfig.get_path("scripts")) / ("lint-imports.exe" if os.name == "nt" else "lint-imports")


def _lint_copy(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "kitty_auth", src / "kitty_auth", ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in files.items():
        (src / "kitty_auth" / name).write_text(text)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_top_level_spec_kitty2_module_may_import_the_entrypoints(tmp_path: Path) -> None:
    result = _lint_copy(tmp_path, {
        "spec_kitty2.py": "from kitty_auth.entrypoints import cli, library\n\n__all__ = ['cli', 'library']\n",
    })  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_the_entrypoints_may_not_import_spec_kitty2(tmp_path: Path) -> None:
    result = _lint_copy(tmp_path, {
        "spec_kitty2.py": "from kitty_auth.entrypoints import cli\n",
        "entrypoints/_probe.py": "import kitty_auth.spec_kitty2\n",
    })  # fmt: skip
    assert result.returncode != 0, result.stdout + result.stderr
    assert "kitty_auth.entrypoints._probe -> kitty_auth.spec_kitty2" in result.stdout
