"""`auth doctor` through Click's runner: marks (and their ASCII fallback), fixes in the user's command, `--json`
alone on stdout, exit codes. The container's doctor ports are the in-memory fakes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from dependency_injector import providers

from kitty_auth.container import Settings, build_container
from kitty_auth.domain.accounts import StoredSession
from kitty_auth.domain.doctor import ServerFacts
from kitty_auth.domain.errors import NetworkError
from kitty_auth.domain.model import Credentials, TokenPair
from kitty_auth.entrypoints.cli import cli
from kitty_auth.testing import FakeClock, FakeDoctorFacts, FakeServerProbe, FakeTokenGateway, healthy_machine

SERVER = "https://auth.example.test"


class Doctor:
    def __init__(self, tmp_path: Path, facts=None, probe: FakeServerProbe | None = None) -> None:  # noqa: ANN001
        self.clock = FakeClock()
        now = self.clock.now()
        session = Credentials(TokenPair("access-value-secret", "refresh-value-secret", now + timedelta(minutes=15),
                                        now + timedelta(days=7)), "user@example.com", SERVER)
        self.facts = FakeDoctorFacts(facts or healthy_machine(sessions=(StoredSession(session, True),)))
        self.probe = probe or FakeServerProbe(clock=self.clock)
        self.gateway = FakeTokenGateway(clock=self.clock)
        self.container = build_container(Settings(home=tmp_path, server_url=SERVER))
        self.container.clock.override(providers.Object(self.clock))
        self.container.doctor_facts.override(providers.Object(self.facts))
        self.container.server_probe.override(providers.Object(self.probe))
        self.container.gateway.override(providers.Object(self.gateway))

    def run(self, *args: str, charset: str = "utf-8"):
        return CliRunner(charset=charset).invoke(cli, ["auth", "doctor", *args], obj=self.container,
                                                 prog_name="kitty-auth")


def test_all_well_prints_a_check_mark_per_check_and_exits_0(tmp_path: Path) -> None:
    result = Doctor(tmp_path).run()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("✓ home directory: ")
    assert "✓ server: https://auth.example.test (where `login` goes, active session of user@example.com): " \
           "reached over HTTPS in 25 ms" in result.stdout
    assert "- session check: not run" in result.stdout
    assert lines[-1] == "All is well."


def test_marks_fall_back_to_ascii_when_stdout_cannot_print_them(tmp_path: Path) -> None:
    facts = healthy_machine()  # no session: a problem
    facts = replace(facts, home=replace(facts.home, mode=0o755))  # a warning
    result = Doctor(tmp_path, facts).run(charset="ascii")
    assert result.exit_code == 1
    assert "[ok] credentials file:" in result.stdout and "[!] home directory:" in result.stdout
    assert "[X] sessions: not logged in" in result.stdout and "[-] session check:" in result.stdout
    assert result.stdout.isascii()
    assert result.stdout.splitlines()[-1] == "1 problem, 1 warning: see the fixes above."


def test_fixes_name_the_command_as_the_user_runs_it(tmp_path: Path) -> None:
    result = Doctor(tmp_path, healthy_machine()).run()
    assert result.exit_code == 1
    assert "✗ sessions: not logged in: no session is stored\n    fix: kitty-auth auth login\n" in result.stdout
    assert "spec-kitty auth" not in result.stdout


def test_json_is_one_object_alone_on_stdout_with_the_same_checks(tmp_path: Path) -> None:
    probe = FakeServerProbe({SERVER: ServerFacts(SERVER, reached=False, error=NetworkError("x: connection refused"))})
    result = Doctor(tmp_path, probe=probe).run("--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)  # the whole of stdout
    assert data["ok"] is False and data["problems"] == 1 and data["warnings"] == 0
    by_name = {c["name"]: c for c in data["checks"]}
    server = by_name["server"]
    assert server["status"] == "problem" and server["rtt_ms"] is None and server["reached"] is False
    assert "connection refused" in server["found"] and server["fix"].startswith("check your connection")
    assert by_name["sessions"]["sessions"][0]["username"] == "user@example.com"
    assert by_name["session check"]["status"] == "skipped"
    assert all(set(c) >= {"name", "status", "found", "fix"} for c in data["checks"])
    assert "secret" not in result.output


def test_offline_sends_nothing_and_check_session_cannot_be_offline(tmp_path: Path) -> None:
    doctor = Doctor(tmp_path)
    result = doctor.run("--offline")
    assert result.exit_code == 0 and doctor.probe.probed == [] and "- server: not contacted (--offline)" in result.stdout
    refused = doctor.run("--offline", "--check-session")
    assert refused.exit_code == 2 and "cannot be combined with --offline" in refused.stderr
    assert doctor.facts.calls == 1  # the refused run gathered nothing


def test_check_session_asks_the_server_and_reports_its_answer(tmp_path: Path) -> None:
    doctor = Doctor(tmp_path)
    doctor.container.repository().save(doctor.facts.facts.credentials.sessions[0].credentials)
    result = doctor.run("--check-session")
    assert result.exit_code == 1  # the fake server never issued that token: it refuses it
    assert "✗ session check: POST /api/v1/ws-token/ refused the access token" in result.stdout
    assert "fix: kitty-auth auth login --force" in result.stdout
    assert doctor.gateway.calls == ["ws_token"]
