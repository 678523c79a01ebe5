"""With a machine session stored (no refresh token), `auth status`, `auth logout --local` and a fresh `get_access_token`
import no OAuth, network or machine-login code: the same check as test_oauth_startup_imports.py."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import kitty_auth
from kitty_auth.domain.model import Identity, LoginMethod, MachineClient, OAuthClient

from unit.test_oauth_startup_imports import RUNNER, SERVER, _env, _unwanted

MACHINE_CODE = {"kitty_auth.domain.machine_login", "kitty_auth.adapters.machine_secrets"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    now = datetime.now(UTC)
    credentials = kitty_auth.Credentials(
        tokens=kitty_auth.TokenPair("at-machine-access-0123456789", None, now + timedelta(minutes=15), None),
        username="ci-bot@example.com", server_url=SERVER, login_method=LoginMethod.MACHINE,
        oauth=OAuthClient("cli_native", SERVER + "/oauth/token", SERVER + "/oauth/revoke"),
        identity=Identity("ci-bot@example.com"), machine=MachineClient("ci-bot"),
    )
    kitty_auth.CredentialStore(tmp_path / "home" / "credentials").save(credentials)
    return tmp_path / "home"


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("logout", "--local")])
def test_commands_with_a_machine_session_import_no_oauth_network_or_machine_login_code(home: Path, tmp_path: Path,
                                                                                       args: tuple[str, ...]) -> None:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(out), *args], env=_env(home), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    modules = set(json.loads(out.read_text()))
    assert "kitty_auth.container" in modules
    assert _unwanted(modules) == [] and not modules & MACHINE_CODE


def test_a_fresh_token_of_a_machine_session_needs_no_secret_and_no_network_code(home: Path) -> None:
    code = (
        "import json, sys, kitty_auth\n"
        "client = kitty_auth.AuthClient(home=sys.argv[1])\n"
        "assert client.get_access_token() == 'at-machine-access-0123456789'\n"
        "client.close()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(home)], env=_env(home), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert _unwanted(modules) == [] and not modules & MACHINE_CODE
