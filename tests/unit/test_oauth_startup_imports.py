"""With an OAuth session stored, `auth status`, `auth logout --local` and a fresh `get_access_token` import no OAuth, browser or network code.

Same method as tests/unit/test_startup_imports.py (a fresh interpreter, sys.modules recorded at
exit); here the stored session is a browser login's, with its OAuth client and identity.
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
from kitty_auth.domain.model import Identity, LoginMethod, OAuthClient, Team

SERVER = "https://auth.example.test"
OAUTH_CODE = {
    "kitty_auth.domain.oauth", "kitty_auth.domain.oauth_use_cases", "kitty_auth.domain.oauth_ports",
    "kitty_auth.domain.oauth_errors", "kitty_auth.adapters.oauth_gateway", "kitty_auth.adapters.oauth_loopback",
    "kitty_auth.adapters.oauth_browser", "kitty_auth.adapters.oauth_revocation", "kitty_auth.entrypoints.oauth_login",
    "webbrowser", "http.server", "socketserver",
}
NETWORK = {"httpx", "httpcore", "h11", "truststore", "pydantic", "websockets"}

RUNNER = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["kitty-auth", "auth", *sys.argv[2:]]
runpy.run_module("kitty_auth", run_name="__main__", alter_sys=True)
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEC_KITTY_", "SSL_CERT"))}
    return {**env, "SPEC_KITTY_HOME": str(home)}


def _unwanted(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in OAUTH_CODE or m.split(".")[0] in NETWORK)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    now = datetime.now(UTC)
    credentials = kitty_auth.Credentials(
        tokens=kitty_auth.TokenPair("at-opaque-access-0123456789", "rt-opaque-refresh-0123456789",
                                    now + timedelta(minutes=15), None),
        username="user@example.com", server_url=SERVER, team_slug="mine", login_method=LoginMethod.WEB,
        session_id="sess-1", oauth=OAuthClient("cli_native", SERVER + "/oauth/token", SERVER + "/oauth/revoke"),
        identity=Identity("user@example.com", "User", "7", (Team("1", "mine", is_private_teamspace=True),)),
    )
    kitty_auth.CredentialStore(tmp_path / "home" / "credentials").save(credentials)
    return tmp_path / "home"


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("logout", "--local")])
def test_commands_with_an_oauth_session_import_no_oauth_or_network_code(home: Path, tmp_path: Path,
                                                                      args: tuple[str, ...]) -> None:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(out), *args], env=_env(home), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    modules = set(json.loads(out.read_text()))
    assert "kitty_auth.container" in modules  # the real path ran
    assert _unwanted(modules) == []


def test_fresh_get_access_token_of_an_oauth_session_imports_no_oauth_or_network_code(home: Path) -> None:
    code = (
        "import json, sys, kitty_auth\n"
        "client = kitty_auth.AuthClient(home=sys.argv[1])\n"
        "assert client.get_access_token() == 'at-opaque-access-0123456789'\n"
        "client.close()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(home)], env=_env(home), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _unwanted(set(json.loads(proc.stdout))) == []


def test_the_check_can_fail() -> None:
    assert _unwanted({"kitty_auth.domain.model", "webbrowser", "httpx._client"}) == ["httpx._client", "webbrowser"]
