"""The test sessions `make test` runs after the 3.11 suite in `.venv`, and the lock file's refresh.

Every session runs the unit, contract and integration tests (choose others after `--`):

- tests-3.12, tests-3.13: the versions pinned in requirements-test.lock (hash-checked), as
  `.venv` has them on 3.11. With `-r` (as `make test` runs nox) the venv is reused and made to
  match the lock again: pinned versions installed, anything the lock does not name uninstalled.
- tests-newest: whatever the index serves today, on 3.13: `pip install --upgrade` of everything,
  in a new venv each run. It prints `pip freeze` first, so a red run names the releases it had;
  compare them with the lock (README, "Dependencies and the lock file").
- tests-lowest: the lowest versions pyproject.toml allows, on 3.11 (the oldest releases have no
  wheels for newer Pythons): each direct dependency and test extra pinned to its `>=` bound
  through a constraints file made from pyproject.toml, its own dependencies left to pip. A bound
  that cannot be installed, or that these tests fail with, is wrong: raise it.
- lock (not run by default): rewrites requirements-test.lock with uv, one universal resolution
  for 3.11 to 3.13 on every platform, hashed, from PyPI. `.venv/bin/nox -s lock` keeps the pins
  that still satisfy pyproject.toml; `.venv/bin/nox -s lock -- --upgrade` takes the newest of
  everything (`-- --upgrade-package NAME` for one).

pip and uv fetch from PyPI alone: pip runs with `--isolated` and PIP_CONFIG_FILE=/dev/null, so
no pip.conf or PIP_* variable (find-links, extra file:// indexes, constraints) adds a source, and
uv with `--no-config`, no UV_* variable and PyPI as its index. Every session installs pyproject's
build requirements (setuptools, wheel) before the package and builds it with
`--no-build-isolation`, from the lock in the locked sessions. Those also install the package with
`--no-index`: a requirement of pyproject.toml that the lock does not meet fails the install
instead of being fetched.

Run one by hand with `.venv/bin/nox -s tests-3.13` (add `-r` to reuse the venv, and
`-- tests/unit -x` to choose the tests).

Interpreters are looked up on this machine only, never downloaded: first under the pyenv roots
($PYENV_ROOT, `pyenv root`, ~/.pyenv, /root/.pyenv, /opt/pyenv, /usr/local/pyenv), then
`pythonX.Y` on PATH and in /usr/local/bin and /usr/bin. Each candidate is run once to check its
version, because a pyenv shim named `python3.12` is on PATH even when the selected pyenv version
does not provide it (it then fails).
A missing interpreter is an error, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCKED_VERSIONS = ("3.12", "3.13")
NEWEST_PYTHON = "3.13"
LOWEST_PYTHON = "3.11"  # requires-python's floor; the lock is resolved for it too
DEFAULT_TESTS = ("tests/unit", "tests/contract", "tests/integration")
LOCK = "requirements-test.lock"
PYPI = "https://pypi.org/simple"
PYPROJECT = Path(__file__).parent / "pyproject.toml"

# pip with no configuration file and no PIP_* variable: PyPI is its only source.
PIP_ENV = {"PIP_CONFIG_FILE": os.devnull}
PIP_INSTALL = ("--isolated", "--disable-pip-version-check", "--index-url", PYPI)

nox.options.sessions = [*(f"tests-{v}" for v in LOCKED_VERSIONS), "tests-newest", "tests-lowest"]
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


@cache
def _pyproject() -> dict:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def _build_requires() -> list[str]:
    return _pyproject()["build-system"]["requires"]


def _pip_install(session: nox.Session, *args: str) -> None:
    session.install(*PIP_INSTALL, *args, env=PIP_ENV)


def _pip(session: nox.Session, *args: str, silent: bool = False) -> str:
    out = session.run("python", "-m", "pip", "--isolated", "--disable-pip-version-check", *args,
                      env=PIP_ENV, silent=silent)  # fmt: skip
    return out if isinstance(out, str) else ""


def _names(freeze: str) -> set[str]:
    """The distribution names in `name==version` lines (a lock file, `pip list --format=freeze`)."""
    return {canonicalize_name(name) for name in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", freeze, re.M)}


def _install_this_checkout(session: nox.Session, *args: str) -> None:
    # No build isolation: setuptools and wheel are already installed, so building fetches nothing.
    _pip_install(session, "--no-build-isolation", *args, ".[test]")


def _pytest(session: nox.Session) -> None:
    session.run("python", "--version")
    session.run("pytest", *(session.posargs or DEFAULT_TESTS))


def _tests_locked(session: nox.Session) -> None:
    _pip_install(session, "--require-hashes", "-r", LOCK)
    # A reused venv still holds what an older lock had, and the previous kitty-auth: keep only the lock.
    installed = _names(_pip(session, "list", "--format=freeze", silent=True))
    unlocked = installed - _names(Path(LOCK).read_text()) - {"pip"}
    if unlocked:
        _pip(session, "uninstall", "--yes", *sorted(unlocked))
    # --no-index: every requirement of pyproject.toml must already be met by the lock, or this fails.
    _install_this_checkout(session, "--no-index")
    _pytest(session)


for _version in LOCKED_VERSIONS:
    nox.session(
        name=f"tests-{_version}",
        python=find_interpreter(_version),
        venv_backend="venv",
    )(_tests_locked)


@nox.session(name="tests-newest", python=find_interpreter(NEWEST_PYTHON), venv_backend="venv", reuse_venv=False)
def tests_newest(session: nox.Session) -> None:
    _pip_install(session, "--upgrade", "pip", *_build_requires())
    _install_this_checkout(session, "--upgrade", "--upgrade-strategy", "eager")
    _pip(session, "freeze", "--all")  # printed: a red run names the releases it had
    _pytest(session)


def lowest_constraints() -> list[str]:
    """`name==bound` for each requirement of pyproject.toml, its test extra included, at its `>=` bound."""
    project = _pyproject()["project"]
    pins = []
    for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(line)
        bounds = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(bounds) != 1:
            raise ValueError(f"pyproject.toml: {line!r} needs exactly one '>=' bound for tests-lowest")
        pins.append(f"{canonicalize_name(requirement.name)}=={bounds[0]}")
    return pins


@nox.session(name="tests-lowest", python=find_interpreter(LOWEST_PYTHON), venv_backend="venv", reuse_venv=False)
def tests_lowest(session: nox.Session) -> None:
    constraints = Path(session.create_tmp()) / "lowest-constraints.txt"
    pins = lowest_constraints()
    constraints.write_text("\n".join(pins) + "\n")
    session.log("lowest allowed: " + ", ".join(pins))
    _pip_install(session, *_build_requires())
    _install_this_checkout(session, "--constraint", str(constraints))
    _pip(session, "freeze", "--all")
    _pytest(session)


@nox.session(python=find_interpreter(LOWEST_PYTHON), venv_backend="venv")
def lock(session: nox.Session) -> None:
    """Rewrite the lock: one universal resolution (every platform, Python 3.11 to 3.13), hashed, from PyPI."""
    _pip_install(session, "uv")
    build = Path(session.create_tmp()) / "build-system-requires.txt"
    build.write_text("\n".join(_build_requires()) + "\n")
    no_uv_settings = {name: None for name in os.environ if name.startswith("UV_")}
    session.run(
        "uv", "--no-config", "pip", "compile", "pyproject.toml", "--extra", "test", os.path.relpath(build),
        "--universal", "--python-version", LOWEST_PYTHON, "--generate-hashes", "--default-index", PYPI,
        "--custom-compile-command", ".venv/bin/nox -s lock", "--output-file", LOCK, *session.posargs,
        env=no_uv_settings,
    )  # fmt: skip
