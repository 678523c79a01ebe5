"""Helpers shared by the bench scripts (not a bench itself: `run_all.py` skips `_*.py`)."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TESTS = ROOT / "tests"
PYTHON = Path(sys.executable)  # run the benches with .venv/bin/python (what `make bench` does)
BIN = PYTHON.parent


def machine() -> str:
    """One line: cores, CPU model, Python, OS (what README's Performance section quotes)."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    os_name = platform.platform(terse=True)
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} {platform.release()})"
    except OSError:
        pass
    return f"nproc={os.cpu_count()}, CPU: {cpu}, Python {platform.python_version()}, {os_name}"


def header(title: str, command: str) -> None:
    print(f"== {title}")
    print(f"   command: {command}")
    print(f"   machine: {machine()}")


def this_command() -> str:
    """The command line that ran the current script, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(ROOT))
    except ValueError:
        script_text = str(script)
    try:
        python = str(PYTHON.relative_to(ROOT))
    except ValueError:
        python = str(PYTHON)
    return shlex.join([python, script_text, *sys.argv[1:]])


def quote(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    return text.replace(str(ROOT) + "/", "")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any SPEC_KITTY_* or SSL_CERT_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEC_KITTY_", "SSL_CERT"))}
    env.update(extra)
    return env


def write_logged_in_home(
    home: Path,
    *,
    server_url: str = "https://127.0.0.1:9",
    username: str = "bench@spec-kitty.test",
    access_lifetime: timedelta = timedelta(minutes=15),
    refresh_lifetime: timedelta = timedelta(days=7),
    issued_at: datetime | None = None,
) -> Path:
    """Write a credentials file directly (no server needed) and return its path."""
    import kitty_auth
    from kitty_auth.testing import make_jwt

    issued = issued_at or datetime.now(UTC)
    access = make_jwt(iat=issued, lifetime=access_lifetime, kind="access")
    refresh = make_jwt(iat=issued, lifetime=refresh_lifetime, kind="refresh")
    credentials = kitty_auth.Credentials(
        tokens=kitty_auth.TokenPair.issued(access, refresh, issued), username=username, server_url=server_url
    )
    path = home / "credentials"
    kitty_auth.CredentialStore(path).save(credentials)
    return path
