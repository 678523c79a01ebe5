"""Machine sessions in the credentials file: the `[machine]` table, a `[tokens]` table without `refresh`, and
what a file may not say (a refresh token missing from any other session)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from kitty_auth.adapters import credentials_format as cf
from kitty_auth.domain.model import Credentials, Identity, LoginMethod, MachineClient, OAuthClient, Team, TokenPair

T0 = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)
SERVER = "https://spec-kitty-dev.fly.dev"
FOREIGN = '# written by hand\n[tracker.providers.jira]\nurl = "https://jira.example"  # keep me\n'


def machine_session(refresh: str | None = None) -> Credentials:
    return Credentials(
        tokens=TokenPair("machine-access", refresh, T0 + timedelta(minutes=5), None,
                         opaque_access_lifetime=timedelta(minutes=5)),
        username="ci-bot@example.com", server_url=SERVER, team_slug="ci-bot", login_method=LoginMethod.MACHINE,
        session_id="sess-9" if refresh else None,
        oauth=OAuthClient("cli_native", SERVER + "/oauth/token", SERVER + "/oauth/revoke"),
        identity=Identity("ci-bot@example.com", "CI bot", "99", (Team("3", "ci-bot", "", "owner", True),)),
        machine=MachineClient("ci-bot"),
    )


@pytest.mark.parametrize("refresh", [None, "machine-refresh"], ids=["plain", "with-refresh-token"])
def test_a_machine_session_round_trips(refresh: str | None) -> None:
    text = cf.render(machine_session(refresh), None)
    data = tomllib.loads(text.decode())
    assert data["session"]["method"] == "machine" and data["machine"] == {"client_id": "ci-bot"}
    assert ("refresh" in data["tokens"]) is (refresh is not None) and "refresh_expires_at" not in data["tokens"]
    assert cf.parse(text) == machine_session(refresh)


def test_switching_between_a_plain_machine_session_and_a_password_session_keeps_foreign_data() -> None:
    password = Credentials(tokens=TokenPair("pw-access", "pw-refresh", T0 + timedelta(minutes=15),
                                            T0 + timedelta(days=7)), username="user@example.com", server_url=SERVER)
    text = cf.render(machine_session(), FOREIGN.encode())
    assert text.decode().startswith(FOREIGN) and "refresh =" not in text.decode()
    text = cf.render(password, text)
    assert cf.parse(text) == password and "[machine]" not in text.decode() and text.decode().startswith(FOREIGN)
    left = cf.without_session(cf.render(machine_session(), FOREIGN.encode()))
    assert left is not None and left.startswith(FOREIGN.encode()) and tomllib.loads(left.decode()) == tomllib.loads(FOREIGN)


BASE = f"""
[tokens]
access = "a"
access_expires_at = "2026-02-03T16:45:00Z"
[user]
username = "ci-bot@example.com"
[server]
url = "{SERVER}"
[oauth]
client_id = "cli_native"
token_endpoint = "{SERVER}/oauth/token"
"""


@pytest.mark.parametrize(("extra", "why"), [
    ('[session]\nmethod = "web"\n', "only a machine session may lack its refresh token"),
    ('[session]\nmethod = "machine"\n', "a machine session names its client"),
    ('[session]\nmethod = "web"\n[machine]\nclient_id = "ci-bot"\n', "only a machine session has a client"),
    ('[session]\nmethod = "machine"\n[machine]\nclient_id = "ci\\u001b[2Jbot"\n', "status prints the client id"),
    ('[session]\nmethod = "machine"\n[machine]\nclient_id = ""\n', "an empty client id"),
])
def test_what_a_file_may_not_say(extra: str, why: str) -> None:
    with pytest.raises(cf.FormatError):
        cf.parse((BASE + extra).encode())


def test_a_plain_machine_session_is_read() -> None:
    session = cf.parse((BASE + '[session]\nmethod = "machine"\n[machine]\nclient_id = "ci-bot"\n').encode())
    assert session is not None and session.tokens.refresh is None and session.machine == MachineClient("ci-bot")
