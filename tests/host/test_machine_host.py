"""A machine session (`kitty-auth auth login --machine`) under the real spec-kitty 2.1.3 host with the swap: the host's
own commands read it without crashing, and renew it by the grant when the secret is in their environment."""

from __future__ import annotations

import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from host.conftest import Host

pytestmark = pytest.mark.e2e

TOKEN_PATH = "/oauth/token"


def machine_login(host: Host, tmp_path: Path, *, access_lifetime: float = 900) -> dict[str, str]:
    """A plain machine session (no refresh token) in the host's home; returns the environment holding its secret."""
    host.server.set_options(machine_refresh_token=False)
    secret_file = tmp_path / "machine-secret"
    secret_file.write_text(host.machine_client("ci-bot") + "\n")
    secret_file.chmod(0o600)
    env = {"SPEC_KITTY_MACHINE_CLIENT_ID": "ci-bot", "SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE": str(secret_file)}
    host.server.set_lifetimes(access=access_lifetime)
    run = host.cli("login", "--machine", **env)  # our CLI, in the host's $HOME/.spec-kitty
    assert run.returncode == 0, run.output
    host.server.set_lifetimes(access=900)
    return env


def wait_until_expired(host: Host) -> None:
    expires = datetime.fromisoformat(tomllib.loads(host.credentials.read_text())["tokens"]["access_expires_at"]
                                     .replace("Z", "+00:00"))
    deadline = time.monotonic() + 30
    while datetime.now(UTC) <= expires:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_hosts_status_reads_a_machine_session(host: Host, tmp_path: Path) -> None:
    machine_login(host, tmp_path)
    status = host.host("auth", "status")
    assert status.returncode == 0, status.output
    assert "Authenticated" in status.stdout and "ci-bot@spec-kitty.test" in status.stdout
    assert "Access token: valid" in status.stdout and "Refresh token: unknown expiry" in status.stdout
    check = host.host("sync", "status", "--check")
    assert "Connected" in check.stdout, check.output


def test_the_host_renews_a_plain_machine_session_with_the_secret_and_keeps_it_without(host: Host,
                                                                                      tmp_path: Path) -> None:
    env = machine_login(host, tmp_path, access_lifetime=2)
    wait_until_expired(host)
    before = host.credentials.read_bytes()
    host.server.reset_stats()
    without = host.host("sync", "status", "--check")  # no secret in the host's environment
    assert "Connected" not in without.stdout
    assert host.credentials.read_bytes() == before and host.server.stats()["requests"].get(TOKEN_PATH) is None

    renewed = host.host("sync", "status", "--check", **env)
    assert "Connected" in renewed.stdout, renewed.output
    assert host.server.stats()["requests"][TOKEN_PATH] == 1
    after = tomllib.loads(host.credentials.read_text())
    assert after["session"]["method"] == "machine" and "refresh" not in after["tokens"]
