"""Extra interpreters for `make test`: the unit, contract and integration tests on Python 3.12 and 3.13.

`make test` runs the import rules and the whole suite on 3.11 in `.venv`, then `nox` runs the
sessions below, each in a fresh venv under `.nox/` with the package (not editable) and its test
extras installed. Run one by hand with `.venv/bin/nox -s tests-3.13` (add `-r` to reuse the venv,
and `-- tests/unit -x` to choose the tests).

Interpreters are looked up on this machine only, never downloaded: first under the pyenv roots
($PYENV_ROOT, `pyenv root`, ~/.pyenv, /root/.pyenv, /opt/pyenv, /usr/local/pyenv), then
`pythonX.Y` on PATH and in /usr/local/bin and /usr/bin. Each candidate is run once to check its version, because a pyenv shim named
`python3.12` is on PATH even when the selected pyenv version does not provide it (it then fails).
A missing interpreter is an error, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import nox

EXTRA_VERSIONS = ("3.12", "3.13")
DEFAULT_TESTS = ("tests/unit", "tests/contract", "tests/integration")

nox.options.sessions = [f"tests-{v}" for v in EXTRA_VERSIONS]
nox.options.error_on_missing_interpreters = True
nox.options.error_on_external_run = True
if hasattr(nox.options, "download_python"):  # nox >= 2025.2; older versions never download
    nox.options.download_python = "never"


def _pyenv_roots() -> list[Path]:
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=10, check=True)
            roots.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    roots += [Path.home() / ".pyenv", Path("/root/.pyenv"), Path("/opt/pyenv"), Path("/usr/local/pyenv")]
    return roots


def _patch(path: Path) -> tuple[int, ...]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", path.name)
    return tuple(int(part) for part in match.groups()) if match else (-1,)


def _reports(executable: str, version: str) -> bool:
    """True if `executable` runs and is CPython `version` (X.Y)."""
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


@cache
def find_interpreter(version: str) -> str:
    """The absolute path of a working Python `version`, or `version` itself if none is found.

    Returning the bare version lets nox report it as a missing interpreter (an error here).
    """
    candidates: list[str] = []
    for root in _pyenv_roots():
        # Release builds only (3.12.1, not 3.12-dev or 3.13.0t), highest patch first.
        builds = sorted(
            (p for p in (root / "versions").glob(f"{version}.*") if _patch(p) != (-1,)),
            key=_patch, reverse=True,
        )  # fmt: skip
        candidates += [str(p / "bin" / f"python{version}") for p in builds]
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in dict.fromkeys(candidates):
        if os.access(candidate, os.X_OK) and _reports(candidate, version):
            return candidate
    return version


def _tests(session: nox.Session) -> None:
    session.install("--disable-pip-version-check", ".[test]")
    # pip keeps an already installed kitty-auth of the same version; test this checkout's code.
    session.install("--disable-pip-version-check", "--no-deps", "--force-reinstall", ".")
    session.run("python", "--version")
    session.run("pytest", *(session.posargs or DEFAULT_TESTS))


for _version in EXTRA_VERSIONS:
    nox.session(
        name=f"tests-{_version}",
        python=find_interpreter(_version),
        venv_backend="venv",
    )(_tests)
