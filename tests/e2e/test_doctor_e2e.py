"""`kitty-auth auth doctor` (installed) against the reference server over TLS, at DEBUG, under the leak check:
all well, a loose file, a broken config.toml, an unreachable server, a server clock that is off, `--check-session`
refreshing an expired access token (password and OAuth sessions), and the exit codes."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page

from e2e.conftest import E2E, Run
from e2e.test_oauth_e2e import browser_login, chromium, page  # noqa: F401 (fixtures: a real browser for OAuth)
from e2e.test_server_faults import closed_port, instant, set_stored
from refserver.harness import DEMO_USERNAME

pytestmark = pytest.mark.e2e


def checks(run: Run) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    """The `--json` object's checks by name (stdout holds that object and nothing else)."""
    found: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for check in json.loads(run.stdout)["checks"]:
        found.setdefault(check["name"], []).append(check)
    return found


def statuses(run: Run) -> dict[str, str]:
    return {name: "/".join(c["status"] for c in cs) for name, cs in checks(run).items()}


@pytest.fixture
def logged_in(e2e: E2E) -> E2E:
    e2e.server.set_options(oauth_metadata="off")  # a password server: `login -u` and ws-token
    run = e2e.login()
    assert run.returncode == 0, run.output
    return e2e


def test_all_well_exits_0_and_json_says_the_same(logged_in: E2E) -> None:
    e2e = logged_in
    run = e2e.cli("doctor")
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines()[-1] == "All is well."
    assert f"✓ server: {e2e.server.url} (where `login` goes, active session of {DEMO_USERNAME}): reached over " \
           "HTTPS in " in run.stdout
    assert "a password server (no OAuth metadata)" in run.stdout
    assert e2e.server.stats()["requests"] == {"/api/v1/token/": 1, "/.well-known/oauth-authorization-server": 1}
    as_json = e2e.cli("doctor", "--json")
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert data["ok"] is True and data["problems"] == 0
    assert statuses(as_json) == {
        "home directory": "ok", "credentials file": "ok", "leftover files": "ok", "config.toml": "ok",
        "server URL": "ok", "lock": "ok", "TLS trust": "ok", "server": "ok", "clock": "ok", "sessions": "ok",
        "SPEC_KITTY_SAAS_TOKEN": "ok", "session check": "skipped"}
    server = checks(as_json)["server"][0]
    assert server["reached"] is True and isinstance(server["rtt_ms"], int) and server["kind"] == "password"
    assert abs(checks(as_json)["clock"][0]["skew_s"]) <= 2
    [session] = checks(as_json)["sessions"][0]["sessions"]
    assert session["username"] == DEMO_USERNAME and session["active"] is True and session["login_method"] == "password"
    probes = [entry for entry in e2e.server.stats()["log"] if entry["path"] == "/.well-known/oauth-authorization-server"]
    assert len(probes) == 2 and not any(entry["has_authorization"] for entry in probes)  # no token was sent


def test_offline_contacts_no_server(logged_in: E2E) -> None:
    e2e = logged_in
    e2e.server.reset_stats()
    run = e2e.cli("doctor", "--offline")
    assert run.returncode == 0, run.output
    assert "- server: not contacted (--offline)" in run.stdout
    assert e2e.server.stats()["requests"] == {}


def test_a_loose_credentials_file_is_a_problem_and_is_left_for_the_user(logged_in: E2E) -> None:
    e2e = logged_in
    os.chmod(e2e.credentials, 0o644)
    run = e2e.cli("doctor", "--offline")
    assert run.returncode == 1
    assert f"✗ credentials file: {e2e.credentials} can be read by other users (0644)" in run.stdout
    assert f"    fix: chmod 600 {e2e.credentials}; if someone may have read it, log in again " \
           "(kitty-auth auth login --force)" in run.stdout
    assert stat.S_IMODE(os.lstat(e2e.credentials).st_mode) == 0o644  # doctor reports; the user (or a login) fixes
    assert e2e.cli("doctor", "--offline", "--json").returncode == 1


def test_a_symlink_at_the_credentials_path_is_fixed_by_rm(logged_in: E2E, tmp_path: Path) -> None:
    e2e = logged_in
    target = tmp_path / "elsewhere"
    e2e.credentials.rename(target)
    e2e.credentials.symlink_to(target)
    run = e2e.cli("doctor", "--offline", "--json")
    assert run.returncode == 1
    check = checks(run)["credentials file"][0]
    assert check["status"] == "problem" and check["kind"] == "symlink" and check["fix"].startswith(f"rm {e2e.credentials} ")
    assert checks(run)["sessions"][0]["status"] == "skipped"


def test_a_broken_config_toml_is_a_problem_with_its_line(e2e: E2E) -> None:
    e2e.home.mkdir(mode=0o700)
    (e2e.home / "config.toml").write_text('[sync]\nserver_url = "https://x.example.test\n')
    run = e2e.cli("doctor", "--json", SPEC_KITTY_SAAS_URL="")
    assert run.returncode == 1
    config = checks(run)["config.toml"][0]
    assert config["status"] == "problem" and "not valid TOML at line 2" in config["found"]
    assert config["fix"] == f"fix or remove {e2e.home / 'config.toml'}"
    assert checks(run)["server URL"][0]["status"] == "problem"
    assert checks(run)["server"][0]["status"] == "skipped"  # no server to contact: none was
    assert e2e.server.stats()["requests"] == {}
    ignored = e2e.cli("doctor", "--json")  # SPEC_KITTY_SAAS_URL names the server: the file is not read
    assert checks(ignored)["config.toml"][0]["status"] == "warning"


def test_an_unreachable_server_is_a_problem_and_offline_does_not_mind(e2e: E2E) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    run = e2e.cli("doctor", SPEC_KITTY_SAAS_URL=url)
    assert run.returncode == 1
    assert f"✗ server: {url} (where `login` goes) cannot be reached over HTTPS: Cannot reach server. Check your " \
           "connection. (127.0.0.1:" in run.stdout and "connection refused" in run.stdout
    assert "    fix: check your connection, your proxy settings (HTTPS_PROXY) and the server URL" in run.stdout
    assert "clock" not in statuses(e2e.cli("doctor", "--json", SPEC_KITTY_SAAS_URL=url))
    offline = e2e.cli("doctor", "--offline", SPEC_KITTY_SAAS_URL=url)
    assert "✗ server" not in offline.stdout


def test_an_untrusted_certificate_says_which_ca_to_trust(logged_in: E2E) -> None:
    run = logged_in.cli("doctor", "--json", SSL_CERT_FILE="")
    server = checks(run)["server"][0]
    assert run.returncode == 1 and server["status"] == "problem" and "certificate could not be verified" in server["found"]
    assert "SSL_CERT_FILE" in server["fix"]


@pytest.mark.parametrize(("offset", "way"), [(600, "behind"), (-600, "ahead of")])
def test_a_server_clock_that_is_off_is_a_warning_that_leaves_refresh_alone(logged_in: E2E, offset: int,
                                                                           way: str) -> None:
    e2e = logged_in
    e2e.server.set_options(date_offset=offset)
    run = e2e.cli("doctor", "--json")
    assert run.returncode == 0, run.output  # a warning, not a problem
    clock = checks(run)["clock"][0]
    assert clock["status"] == "warning" and offset - 3 <= clock["skew_s"] <= offset + 3
    assert f"10 minutes {way} {e2e.server.url}'s" in clock["found"]
    assert "measures token expiries on this machine's clock, so refreshing still works" in clock["found"]
    assert e2e.cli("doctor", "--check-session").returncode == 0  # the session itself is unaffected


def test_check_session_refreshes_an_expired_access_token_then_proves_it(logged_in: E2E) -> None:
    e2e = logged_in
    set_stored(e2e, "tokens", "access_expires_at", instant(-timedelta(minutes=1)))
    before = tomllib.loads(e2e.credentials.read_text())["tokens"]["refresh"]
    e2e.server.reset_stats()
    run = e2e.cli("doctor", "--check-session", "--json")
    assert run.returncode == 0, run.output
    proof = checks(run)["session check"][0]
    assert proof["status"] == "ok" and proof["refreshed"] is True and proof["endpoint"] == "POST /api/v1/ws-token/"
    assert tomllib.loads(e2e.credentials.read_text())["tokens"]["refresh"] != before  # the rotated pair is stored
    requests = e2e.server.stats()["requests"]
    assert requests["/api/v1/token/refresh/"] == 1 and requests["/api/v1/ws-token/"] == 1


def test_check_session_with_a_session_the_server_ended_exits_1(logged_in: E2E) -> None:
    e2e = logged_in
    e2e.server.add_fault("/api/v1/ws-token/", status=401, body='{"detail": "Given token not valid"}', count=1)
    run = e2e.cli("doctor", "--check-session")
    assert run.returncode == 1
    assert "✗ session check: POST /api/v1/ws-token/ refused the access token" in run.stdout
    assert "    fix: kitty-auth auth login --force" in run.stdout


def test_check_session_and_offline_together_are_a_usage_error(e2e: E2E) -> None:
    run = e2e.cli("doctor", "--check-session", "--offline")
    assert run.returncode == 2 and "cannot be combined with --offline" in run.stderr and run.stdout == ""


def test_not_logged_in_exits_1_naming_the_login_command(e2e: E2E) -> None:
    run = e2e.cli("doctor")
    assert run.returncode == 1
    assert "✗ sessions: not logged in: no session is stored\n    fix: kitty-auth auth login\n" in run.stdout


def test_the_token_variable_is_reported_never_shown(logged_in: E2E) -> None:
    value = "env-token-value-that-must-never-be-printed"
    logged_in.secrets.add(value)
    run = logged_in.cli("doctor", "--offline", SPEC_KITTY_SAAS_TOKEN=value)
    assert "! SPEC_KITTY_SAAS_TOKEN: set: every command uses it instead of the 1 stored session" in run.stdout
    assert run.returncode == 0


def test_ascii_marks_where_stdout_cannot_print_check_marks(logged_in: E2E) -> None:
    run = logged_in.cli("doctor", "--offline", PYTHONIOENCODING="ascii")
    assert run.returncode == 0 and run.stdout.isascii()
    assert "[ok] home directory:" in run.stdout and "[-] server: not contacted (--offline)" in run.stdout


def test_check_session_on_an_oauth_session_calls_me(e2e: E2E, page: Page, tmp_path: Path) -> None:  # noqa: F811
    browser_login(e2e, page, tmp_path)
    set_stored(e2e, "tokens", "access_expires_at", instant(-timedelta(minutes=1)))
    e2e.server.reset_stats()
    run = e2e.cli("doctor", "--check-session", "--json")
    assert run.returncode == 0, run.output
    proof = checks(run)["session check"][0]
    assert proof["endpoint"] == "GET /api/v1/me" and proof["refreshed"] is True
    assert f"the server names {DEMO_USERNAME}" in proof["found"]
    assert checks(run)["server"][0]["login_method"] == "web"
    [session] = checks(run)["sessions"][0]["sessions"]
    assert session["login_method"] == "web" and session["session_id"]  # the server's session id (not a secret)
    requests = e2e.server.stats()["requests"]
    assert requests["/oauth/token"] == 1 and requests["/api/v1/me"] == 1
