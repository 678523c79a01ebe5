"""`auth status` and `auth token` stay cheap: no network stack, TOML writer, lock library or dependency-injector.

Each case runs the real entry point (`python -m kitty_auth auth status ...`) in a fresh interpreter
with a temporary SPEC_KITTY_HOME and records ``sys.modules`` when the process exits. No timing is
asserted here; `bench/startup.py` measures the time.

The offline commands build their parts without dependency-injector (kitty_auth/container/offline.py),
so they import neither it nor asyncio nor ssl (``OFFLINE_CLI``); the library's `get_access_token`
uses the full container, which imports all three.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import kitty_auth
from kitty_auth.testing import make_jwt

# Top-level packages `auth status` must not import (a submodule counts as its package).
FORBIDDEN = {
    "httpx", "httpcore", "h11", "h2", "anyio", "certifi", "truststore",  # HTTP and TLS trust
    "websockets",  # live sync
    "tomlkit",  # the credentials *writer*; reading uses tomllib
    "filelock",  # status never locks
    "pydantic", "pydantic_core",  # only the HTTP adapter validates responses with pydantic
}  # fmt: skip
FORBIDDEN_MODULES = {
    "importlib.metadata",  # click.version_option must look the version up only for --version
    "kitty_auth.adapters.https_client", "kitty_auth.adapters.simplejwt_gateway", "kitty_auth.adapters.response_fields",
    "kitty_auth.adapters.tls_trust",
    "kitty_auth.adapters.websocket_connector",
    "kitty_auth.entrypoints.library",
    "kitty_auth.entrypoints.websocket",
    "kitty_auth.domain.live_sync",
    # OAuth logins and the browser: only `auth login` may need them (see also test_oauth_startup_imports.py)
    "kitty_auth.domain.oauth", "kitty_auth.domain.oauth_use_cases", "kitty_auth.domain.oauth_ports",
    "kitty_auth.adapters.oauth_gateway", "kitty_auth.adapters.oauth_loopback", "kitty_auth.adapters.oauth_browser",
    "kitty_auth.adapters.oauth_revocation", "kitty_auth.entrypoints.oauth_login", "webbrowser", "http.server",
    # `auth doctor`: registered on the group, loaded only when it runs
    "kitty_auth.domain.doctor", "kitty_auth.adapters.doctor_facts", "kitty_auth.adapters.doctor_probe",
}

# The offline commands of the CLI (status, and token with a fresh token) import no container machinery either.
OFFLINE_CLI = {"dependency_injector", "asyncio", "ssl", "kitty_auth.container.di"}

# Runs `python -m kitty_auth auth <args>` exactly as the shell would (runpy, standalone Click,
# sys.exit), and writes the names in sys.modules to argv[1] at exit, whatever the exit code.
RUNNER = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["kitty-auth", "auth", *sys.argv[2:]]
runpy.run_module("kitty_auth", run_name="__main__", alter_sys=True)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEC_KITTY_", "SSL_CERT"))}
    env.update(extra)
    return env


def _logged_in(home: Path) -> None:
    now = datetime.now(UTC)
    access = make_jwt(iat=now, lifetime=timedelta(minutes=15))
    refresh = make_jwt(iat=now, lifetime=timedelta(days=7), kind="refresh")
    credentials = kitty_auth.Credentials(
        tokens=kitty_auth.TokenPair.issued(access, refresh, now),
        username="user@example.com",
        server_url="https://auth.example.test",
    )
    kitty_auth.CredentialStore(home / "credentials").save(credentials)


def _status_modules(tmp_path: Path, *args: str, command: str = "status", **env: str) -> tuple[int, set[str], str]:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(out), command, *args],
                          env=_env(SPEC_KITTY_HOME=str(tmp_path / "home"), **env),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    modules = set(json.loads(out.read_text()))
    return proc.returncode, modules, proc.stdout + proc.stderr


def _unwanted(modules: set[str], *, offline_cli: bool = True) -> list[str]:
    """The forbidden modules in ``modules``; ``offline_cli``: with the container machinery too."""
    top = FORBIDDEN | (OFFLINE_CLI if offline_cli else set())
    return sorted(m for m in modules if m.split(".")[0] in top or m in FORBIDDEN_MODULES
                  or (offline_cli and m in OFFLINE_CLI))


@pytest.mark.parametrize("args", [(), ("--json",)], ids=["text", "json"])
def test_status_logged_in_imports_nothing_it_does_not_use(tmp_path: Path, args: tuple[str, ...]) -> None:
    _logged_in(tmp_path / "home")
    code, modules, output = _status_modules(tmp_path, *args)
    assert code == 0, output
    assert "user@example.com" in output
    assert "click" in modules and "kitty_auth.container.offline" in modules  # the real path ran
    assert _unwanted(modules) == []


@pytest.mark.parametrize("variable", [False, True], ids=["stored-session", "SPEC_KITTY_SAAS_TOKEN"])
def test_token_with_a_fresh_token_imports_nothing_it_does_not_use(tmp_path: Path, variable: bool) -> None:
    _logged_in(tmp_path / "home")
    env = {"SPEC_KITTY_SAAS_TOKEN": "a-token-from-the-environment"} if variable else {}
    code, modules, output = _status_modules(tmp_path, command="token", **env)
    assert code == 0, output
    assert output.count("\n") == 1 and (not variable or output == "a-token-from-the-environment\n")
    assert "kitty_auth.container.offline" in modules and "kitty_auth.domain.token_source" in modules
    assert _unwanted(modules) == []


@pytest.mark.parametrize("state", ["logged-out", "corrupt-file"])
def test_status_not_logged_in_imports_nothing_it_does_not_use(tmp_path: Path, state: str) -> None:
    home = tmp_path / "home"
    if state == "corrupt-file":
        home.mkdir(mode=0o700)
        fd = os.open(home / "credentials", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"this is [not toml")
        os.close(fd)
    code, modules, output = _status_modules(tmp_path)
    assert code == 1, output
    assert "Not logged in" in output
    assert _unwanted(modules) == []


def test_get_access_token_on_a_fresh_token_imports_no_network_stack(tmp_path: Path) -> None:
    """The library's hot path: a fresh token needs no request, so no httpx, truststore or pydantic."""
    _logged_in(tmp_path / "home")
    code = (
        "import json, sys, kitty_auth\n"
        "client = kitty_auth.AuthClient(home=sys.argv[1])\n"
        "assert client.get_access_token()\n"
        "client.close()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "home")], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert "kitty_auth.container.di" in modules
    assert [m for m in _unwanted(modules, offline_cli=False) if m != "kitty_auth.entrypoints.library"] == []


def test_importing_the_package_is_light() -> None:
    """`import kitty_auth` (the host's first step) loads the domain only: no Click, no container, no asyncio."""
    code = "import json, sys, kitty_auth; kitty_auth.AuthError; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    heavy = {"click", "dependency_injector", "asyncio", "ssl", "kitty_auth.container", "kitty_auth.domain.live_sync"}
    assert _unwanted(modules) == [] and sorted(heavy & modules) == []


def test_the_package_namespace_is_its_public_api() -> None:
    """`import kitty_auth` exposes `__all__` (and its subpackages), not helpers such as `Any` or `annotations`."""
    code = (
        "import json, types, kitty_auth\n"
        "names = [n for n in dir(kitty_auth) if not n.startswith('_')]\n"
        "print(json.dumps([n for n in names if not isinstance(getattr(kitty_auth, n), types.ModuleType)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)) == sorted(kitty_auth.__all__)


def test_the_check_can_fail() -> None:
    """The helper really flags a forbidden import (guards against a check that is always empty)."""
    modules = {"click", "httpx._client", "importlib.metadata", "kitty_auth.domain.model", "asyncio.events",
               "kitty_auth.container.di"}
    assert _unwanted(modules) == ["asyncio.events", "httpx._client", "importlib.metadata", "kitty_auth.container.di"]
    assert _unwanted(modules, offline_cli=False) == ["httpx._client", "importlib.metadata"]
