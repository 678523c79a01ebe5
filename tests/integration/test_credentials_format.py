"""The credentials file's layout: what we write, what we read, and that nothing else in the file moves.

Other programs keep their own tables in the same file (the spec-kitty 2.x host stores
``[tracker.providers.*]`` there), so every save is checked against the exact text it must produce:
the old file with only our values changed.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitty_auth.adapters import credentials_format as cf
from kitty_auth.domain.model import (
    Credentials,
    Identity,
    IssuedTokens,
    LoginMethod,
    MachineClient,
    OAuthClient,
    Team,
    TokenPair,
)

T0 = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)


def password_session(access: str = "new-access", refresh: str = "new-refresh", *, team: str | None = "acme",
                     refresh_at: datetime | None = T0 + timedelta(days=7)) -> Credentials:
    return Credentials(
        tokens=TokenPair(access, refresh, T0 + timedelta(minutes=15), refresh_at),
        username="user@example.com", server_url="https://spec-kitty-dev.fly.dev", team_slug=team,
    )


def oauth_session(method: LoginMethod = LoginMethod.WEB) -> Credentials:
    return Credentials(
        tokens=TokenPair("oauth-access", "oauth-refresh", T0 + timedelta(hours=1), None),
        username="zoe@example.com", server_url="https://spec-kitty-dev.fly.dev", team_slug="zoe-private",
        login_method=method, session_id="sess-42",
        oauth=OAuthClient("spec-kitty-cli", "https://spec-kitty-dev.fly.dev/oauth/token/",
                          "https://spec-kitty-dev.fly.dev/oauth/revoke_token/"),
        identity=Identity("zoe@example.com", "Zoë Ünicode", "42", (
            Team("7", "zoe-private", "Zoë's space", "owner", True),
            Team("9", "acme", 'Acme "Inc"', "member"),
        )),
        machine=MachineClient("ci-bot") if method is LoginMethod.MACHINE else None,
    )


# -- the layout ----------------------------------------------------------------------------

PASSWORD_TEXT = """\
[tokens]
access = "new-access"
refresh = "new-refresh"
access_expires_at = "2026-02-03T16:45:00Z"
refresh_expires_at = "2026-02-10T16:30:00Z"

[user]
username = "user@example.com"
team_slug = "acme"

[server]
url = "https://spec-kitty-dev.fly.dev"
"""

OAUTH_TEXT = """\
[tokens]
access = "oauth-access"
refresh = "oauth-refresh"
access_expires_at = "2026-02-03T17:30:00Z"

[user]
username = "zoe@example.com"
team_slug = "zoe-private"
email = "zoe@example.com"
name = "Zoë Ünicode"
user_id = "42"
teams = [
    {id = "7", slug = "zoe-private", name = "Zoë's space", role = "owner", is_private_teamspace = true},
    {id = "9", slug = "acme", name = "Acme \\"Inc\\"", role = "member", is_private_teamspace = false},
]

[server]
url = "https://spec-kitty-dev.fly.dev"

[session]
method = "web"
id = "sess-42"

[oauth]
client_id = "spec-kitty-cli"
token_endpoint = "https://spec-kitty-dev.fly.dev/oauth/token/"
revocation_endpoint = "https://spec-kitty-dev.fly.dev/oauth/revoke_token/"
"""


def test_a_password_session_is_the_contract_layout_with_its_team() -> None:
    assert cf.render(password_session(), None).decode() == PASSWORD_TEXT
    assert cf.parse(PASSWORD_TEXT.encode()) == password_session()


def test_an_oauth_session_adds_session_oauth_identity_and_no_refresh_expiry() -> None:
    assert cf.render(oauth_session(), None).decode() == OAUTH_TEXT
    loaded = cf.parse(OAUTH_TEXT.encode())
    assert loaded == oauth_session()
    assert loaded.tokens.refresh_expires_at is None
    assert loaded.identity.team_slug == "zoe-private"


@pytest.mark.parametrize("method", list(LoginMethod))
def test_every_login_method_round_trips(method: LoginMethod) -> None:
    session = oauth_session(method) if method is not LoginMethod.PASSWORD else password_session()
    assert cf.parse(cf.render(session, None)) == session


def test_a_team_slug_is_kept_across_a_refresh_that_names_none() -> None:
    stored = cf.parse(PASSWORD_TEXT.encode())
    refreshed = stored.refreshed(IssuedTokens(access="a2", refresh="r2"), T0 + timedelta(hours=1))
    text = cf.render(refreshed, PASSWORD_TEXT.encode()).decode()
    assert 'team_slug = "acme"' in text
    assert cf.parse(text.encode()).team_slug == "acme"


# -- opaque access tokens: their lifetime --------------------------------------------------

def opaque_session(lifetime_s: float, requested_at: datetime = T0) -> Credentials:
    tokens = TokenPair.issued("at-opaque", "rt-opaque", requested_at, expires_in=lifetime_s)
    return Credentials(tokens=tokens, username="user@example.com", server_url="https://spec-kitty-dev.fly.dev")


def test_an_opaque_access_tokens_lifetime_is_kept_in_whole_seconds() -> None:
    text = cf.render(opaque_session(60), None).decode()
    assert "access_lifetime_s = 60\n" in text
    assert tomllib.loads(text)["tokens"]["access_lifetime_s"] == 60
    assert cf.parse(text.encode()).tokens.access_lifetime == timedelta(seconds=60)
    # a JWT carries its own lifetime: nothing is added, and a refresh to one removes the key
    jwt_session = password_session()
    assert "access_lifetime_s" not in cf.render(jwt_session, text.encode()).decode()


def test_the_spec_kitty_2_hosts_toml_parser_reads_the_file_with_the_lifetime() -> None:
    """spec-kitty 2.1.3's CredentialStore reads the file with the `toml` package and picks its keys by name."""
    import toml

    data = toml.loads(cf.render(opaque_session(60), PASSWORD_TEXT.encode()).decode())
    assert data["tokens"]["access"] == "at-opaque" and data["tokens"]["refresh"] == "rt-opaque"
    assert data["user"]["username"] == "user@example.com"


def test_a_file_without_the_lifetime_falls_back_to_the_default() -> None:
    loaded = cf.parse(PASSWORD_TEXT.encode())
    assert loaded.tokens.opaque_access_lifetime is None


@pytest.mark.parametrize("value", ['"60"', "true", "0", "-5", "60.5", "1e300", "999999999999", "[60]"])
def test_an_unusable_lifetime_counts_as_absent_never_as_a_corrupt_file(value: str) -> None:
    text = PASSWORD_TEXT.replace('refresh_expires_at = "2026-02-10T16:30:00Z"\n',
                                 f'refresh_expires_at = "2026-02-10T16:30:00Z"\naccess_lifetime_s = {value}\n')
    assert cf.parse(text.encode()).tokens.opaque_access_lifetime is None


@settings(max_examples=200, deadline=None)
@given(lifetime_s=st.floats(min_value=4.0, max_value=3660 * 86400.0, allow_nan=False),
       micro=st.integers(min_value=0, max_value=999_999))
def test_property_a_fresh_opaque_token_read_back_from_the_file_is_not_inside_the_margin(lifetime_s, micro) -> None:
    """Instants are kept to the second and lifetimes in whole seconds: still no refresh of a fresh token."""
    from kitty_auth.domain.model import AccessDecision, ExpiryPolicy

    requested_at = T0.replace(microsecond=micro)
    loaded = cf.parse(cf.render(opaque_session(lifetime_s, requested_at), None))
    assert loaded.access_decision(requested_at, ExpiryPolicy()) is AccessDecision.USE


# -- timestamps ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2026-02-03T16:45:00Z", datetime(2026, 2, 3, 16, 45, tzinfo=UTC)),
    ("2026-02-03T16:45:00z", datetime(2026, 2, 3, 16, 45, tzinfo=UTC)),
    ("2026-02-03T16:45:00+00:00", datetime(2026, 2, 3, 16, 45, tzinfo=UTC)),
    ("2026-02-03T16:45:00.123456+00:00", datetime(2026, 2, 3, 16, 45, 0, 123456, tzinfo=UTC)),
    ("2026-02-03T18:45:00+02:00", datetime(2026, 2, 3, 16, 45, tzinfo=UTC)),
    ("2026-02-03T11:15:00-05:30", datetime(2026, 2, 3, 16, 45, tzinfo=UTC)),
    # spec-kitty 2.0.x: datetime.utcnow().isoformat(), no zone: UTC
    ("2026-02-03T16:45:00.123456", datetime(2026, 2, 3, 16, 45, 0, 123456, tzinfo=UTC)),
    ("2026-02-03T16:45:00", datetime(2026, 2, 3, 16, 45, tzinfo=UTC)),
])
def test_instants_are_read_with_any_offset_and_without_one_as_utc(text: str, expected: datetime) -> None:
    parsed = cf.parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", " ", "soon", "2026-13-01T00:00:00Z", "1700000000"])
def test_a_bad_instant_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        cf.parse_timestamp(text)


def test_instants_are_written_in_utc_ending_in_z_to_the_second() -> None:
    plus_two = timezone(timedelta(hours=2))
    session = password_session()
    session = Credentials(
        tokens=TokenPair("a", "r", datetime(2026, 2, 3, 18, 45, 0, 987654, tzinfo=plus_two),
                         datetime(2026, 2, 10, 16, 30, 0, 1, tzinfo=UTC)),
        username="u", server_url="https://h.example",
    )
    text = cf.render(session, None).decode()
    assert 'access_expires_at = "2026-02-03T16:45:00Z"' in text
    assert 'refresh_expires_at = "2026-02-10T16:30:00Z"' in text


# -- what is not ours is kept --------------------------------------------------------------

# Every kind of thing another program may have put in the file, around and inside our tables.
FOREIGN = """\
# ~/.spec-kitty/credentials: shared by spec-kitty and its plugins
title = "top-level key before any table"
inline = {a = 1, b = "two", nested = {c = [1, 2, 3]}}

[tokens]  # header comment on our table
access = "old-access"   # trailing comment on our key
x = 1
refresh = "old-refresh"
access_expires_at = "2026-01-01T00:00:00.123456+00:00"
refresh_expires_at = "2026-01-08T00:00:00+00:00"
'literal key' = 'literal value'

# Jira, written by `spec-kitty tracker`
[tracker.providers.jira]
url = "https://jira.example"   # keep me
token = "jira-secret"
labels = [
  "one",  # a comment inside an array
  "two",
]

[user]
username = "user@example.com"
team_slug = "old-team"
nickname = "Zoë 🐈 \\u00e9 \\"quoted\\""
multi = \"\"\"
two
lines\"\"\"

[user.profile]
colour = "blue"

[tracker.providers.github]
owner = "acme"

# between two of our tables
[server]
url = "https://spec-kitty-dev.fly.dev"
extra = true

[[plugins]]
name = "alpha"
[[plugins]]
name = "beta"   # second

[zz_last]
float = 1.5e3
date = 2026-02-03
"""

# The same file after a save of password_session(): our values change in place, nothing else.
FOREIGN_SAVED = (
    FOREIGN
    .replace('access = "old-access"', 'access = "new-access"')
    .replace('refresh = "old-refresh"', 'refresh = "new-refresh"')
    .replace('"2026-01-01T00:00:00.123456+00:00"', '"2026-02-03T16:45:00Z"')
    .replace('"2026-01-08T00:00:00+00:00"', '"2026-02-10T16:30:00Z"')
    .replace('team_slug = "old-team"', 'team_slug = "acme"')
)


# ... and after refresh_expires_at was removed (an OAuth session) and added back: it goes after
# the table's last key, before the comment that belongs to the next table.
FOREIGN_SAVED_READDED = FOREIGN_SAVED.replace(
    'refresh_expires_at = "2026-02-10T16:30:00Z"\n\'literal key\' = \'literal value\'\n',
    '\'literal key\' = \'literal value\'\nrefresh_expires_at = "2026-02-10T16:30:00Z"\n',
)


def test_a_save_changes_our_values_in_place_and_not_one_other_byte() -> None:
    assert FOREIGN_SAVED != FOREIGN
    assert cf.render(password_session(), FOREIGN.encode()).decode() == FOREIGN_SAVED


def test_an_unchanged_value_keeps_its_bytes() -> None:
    # a literal string, a value with a comment: unchanged, so not rewritten
    text = FOREIGN_SAVED.replace('url = "https://spec-kitty-dev.fly.dev"\nextra',
                                 "url = 'https://spec-kitty-dev.fly.dev'  # ours, as a literal\nextra")
    assert cf.render(password_session(), text.encode()).decode() == text


def test_keys_that_no_longer_apply_are_removed_and_new_ones_go_after_our_last_key() -> None:
    session = password_session(team=None, refresh_at=None)
    text = cf.render(session, FOREIGN.encode()).decode()
    assert "refresh_expires_at" not in text and "team_slug" not in text
    assert text == (
        FOREIGN_SAVED.replace('refresh_expires_at = "2026-02-10T16:30:00Z"\n', "")
        .replace('team_slug = "acme"\n', "")
    )
    back = cf.render(password_session(), text.encode()).decode()
    assert back == FOREIGN_SAVED_READDED.replace(
        'team_slug = "acme"\nnickname = "Zoë 🐈 \\u00e9 \\"quoted\\""\nmulti = """\ntwo\nlines"""\n',
        'nickname = "Zoë 🐈 \\u00e9 \\"quoted\\""\nmulti = """\ntwo\nlines"""\nteam_slug = "acme"\n',
    )


def _foreign_lines(text: str, *, our_headers: tuple[str, ...] = ("session", "oauth")) -> list[str]:
    """The lines of ``text`` that are not ours (our keys, the headers of ``our_headers``)."""
    kept: list[str] = []
    table = ""
    in_teams = False
    for line in text.splitlines():
        header = re.match(r"^\[+([^\]]+)\]+", line)
        if header:
            table = header.group(1).strip()
            if table in our_headers:
                continue
        elif in_teams:
            in_teams = line != "]"
            continue
        else:
            key = re.match(r"^([A-Za-z0-9_]+) = ", line)
            if key and key.group(1) in cf.OUR_KEYS.get(table, ()):
                in_teams = key.group(1) == "teams" and line.endswith("[")
                continue
        kept.append(line)
    return kept


def test_oauth_and_password_sessions_in_turn_keep_everything_else() -> None:
    text = FOREIGN.encode()
    for session in (oauth_session(), password_session(), oauth_session(LoginMethod.DEVICE), password_session()):
        text = cf.render(session, text)
        assert cf.parse(text) == session
        assert [ln for ln in _foreign_lines(text.decode()) if ln] == [ln for ln in _foreign_lines(FOREIGN) if ln]
    # back to a password session: only our values differ from the start, blank lines included
    # but for the one that separated a table we added and then removed
    assert text.decode().rstrip("\n") == FOREIGN_SAVED_READDED.rstrip("\n")


def test_crlf_files_stay_crlf() -> None:
    """tomlkit keeps the CRLF of the lines it parsed but writes LF for the ones it adds; we add CRLF."""
    source = FOREIGN.replace("\n", "\r\n").encode()
    out = cf.render(oauth_session(), source)
    assert b"\r\n" in out and re.search(rb"(?<!\r)\n", out) is None
    assert cf.parse(out) == oauth_session()
    foreign = [ln for ln in _foreign_lines(out.decode().replace("\r\n", "\n")) if ln]
    assert foreign == [ln for ln in _foreign_lines(FOREIGN) if ln]
    again = cf.render(password_session(), out)
    assert again.decode().rstrip("\r\n") == FOREIGN_SAVED_READDED.replace("\n", "\r\n").rstrip("\r\n")


def test_lf_files_get_no_cr() -> None:
    assert b"\r" not in cf.render(oauth_session(), FOREIGN.encode())


def test_a_file_without_a_final_newline() -> None:
    source = b'[tracker.providers.jira]\nurl = "https://jira.example"'
    out = cf.render(password_session(), source)
    assert out.startswith(source + b"\n")
    assert cf.parse(out) == password_session()


def test_a_file_with_only_another_programs_tables_holds_no_session_and_gains_ours() -> None:
    source = b'# tracker only\n[tracker.providers.jira]\nurl = "https://jira.example"\n'
    assert cf.parse(source) is None
    out = cf.render(password_session(), source)
    assert out == source + b"\n" + PASSWORD_TEXT.encode()


def test_without_session_leaves_exactly_what_is_not_ours() -> None:
    rest = cf.without_session(cf.render(oauth_session(), FOREIGN.encode()))
    assert rest is not None
    assert cf.parse(rest) is None
    doc = tomllib.loads(rest.decode())
    assert doc["tokens"] == {"x": 1, "literal key": "literal value"}
    assert doc["user"]["nickname"] == 'Zoë 🐈 é "quoted"' and "username" not in doc["user"]
    assert doc["tracker"]["providers"]["jira"]["token"] == "jira-secret"
    assert "session" not in doc and "oauth" not in doc and doc["server"] == {"extra": True}
    assert [ln for ln in _foreign_lines(rest.decode()) if ln] == [ln for ln in _foreign_lines(FOREIGN) if ln]


def test_without_session_of_a_file_that_is_only_ours_is_none() -> None:
    assert cf.without_session(OAUTH_TEXT.encode()) is None
    assert cf.without_session(PASSWORD_TEXT.encode()) is None
    assert cf.without_session(b"garbage [[[") is None


def test_a_file_that_does_not_parse_is_replaced_by_a_fresh_one() -> None:
    assert cf.render(password_session(), b"this is [not toml").decode() == PASSWORD_TEXT
    assert cf.render(password_session(), b"\xff\xfe").decode() == PASSWORD_TEXT


@pytest.mark.parametrize("source", [
    b'tokens = "not a table"\n[other]\nk = 1\n',
    b'[[tokens]]\naccess = "a"\n[other]\nk = 1\n',
    b'user = 3\n[other]\nk = 1\n',
])
def test_a_key_of_ours_that_is_not_a_table_is_replaced(source: bytes) -> None:
    out = cf.render(password_session(), source)
    assert cf.parse(out) == password_session()
    assert tomllib.loads(out.decode())["other"] == {"k": 1}


def test_an_inline_user_table_keeps_its_other_keys() -> None:
    source = b'user = {username = "old", colour = "red"}\n\n[tracker.providers.jira]\nurl = "x"\n'
    for session in (password_session(), oauth_session()):
        out = cf.render(session, source)
        assert cf.parse(out) == session
        doc = tomllib.loads(out.decode())
        assert doc["tracker"] == {"providers": {"jira": {"url": "x"}}}
        if session.identity is None:
            assert doc["user"]["colour"] == "red"  # (an inline table cannot take the teams array)


def test_a_session_split_across_out_of_order_tables_is_updated_where_it_is() -> None:
    source = (b'[user]\nusername = "old"\n\n[server]\nurl = "https://old.example"\n\n'
              b'[user.profile]\ncolour = "red"\n\n[tokens]\naccess = "a"\n')
    out = cf.render(password_session(), source)
    assert cf.parse(out) == password_session()
    assert tomllib.loads(out.decode())["user"]["profile"] == {"colour": "red"}


@pytest.mark.parametrize("content", [
    b"", b"  \n", b"[tokens]\naccess = 1\n", b'[tokens]\naccess = "a"\nrefresh = "r"\n',
    PASSWORD_TEXT.replace('"2026-02-03T16:45:00Z"', "2026-02-03T16:45:00Z").encode(),
    OAUTH_TEXT.replace('[oauth]\nclient_id = "spec-kitty-cli"\n', "[oauth]\n").encode(),  # no client
    OAUTH_TEXT.replace('method = "web"', 'method = "carrier-pigeon"').encode(),
    PASSWORD_TEXT.replace("[server]", '[session]\nmethod = "web"\n\n[server]').encode(),  # web w/o oauth
    OAUTH_TEXT.replace("is_private_teamspace = true", 'is_private_teamspace = "yes"').encode(),
    OAUTH_TEXT.replace('slug = "acme", ', "").encode(),
    OAUTH_TEXT.replace('teams = [', 'teams = "none"\nignored = [').encode(),
    PASSWORD_TEXT.replace('team_slug = "acme"', "team_slug = 7").encode(),
])
def test_a_broken_session_is_a_format_error_that_quotes_nothing(content: bytes) -> None:
    with pytest.raises(cf.FormatError) as info:
        cf.parse(content)
    assert info.value.__cause__ is None and "acme" not in str(info.value) and "access" not in str(info.value)


# -- a property: random foreign content survives any save ----------------------------------

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
SCALAR = st.one_of(
    st.integers(-10**6, 10**6), st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.lists(st.integers(0, 9), max_size=3),
)
COMMENT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(lambda s: "# " + s)


def _value(value: object) -> str:
    import tomlkit

    return tomlkit.item(value).as_string()


OLD_OAUTH = {
    "session": {"method": '"device"', "id": '"old-session"'},
    "oauth": {"client_id": '"old-client"', "token_endpoint": '"https://old.example/oauth/token/"'},
}


@st.composite
def foreign_file(draw: st.DrawFn, *, old_oauth: bool = False) -> str:
    """Our tables (an old session) among random foreign tables, keys and comments."""
    ours = {name: dict(zip(keys, values, strict=True)) for name, keys, values in [
        ("tokens", cf.OUR_KEYS["tokens"], ['"old-a"', '"old-r"', '"2026-01-01T00:00:00Z"', '"2026-01-08T00:00:00Z"', "300"]),
        ("user", ("username",), ['"old@example.com"']),
        ("server", ("url",), ['"https://old.example"']),
    ]}
    if old_oauth:
        ours["user"]["email"] = '"old@example.com"'
        ours["user"]["teams"] = '[{id = "1", slug = "old-team"}]'
        ours.update(OLD_OAUTH)
    blocks: list[str] = []
    for table, items in ours.items():
        lines = [f"[{table}]"]
        extra = draw(st.dictionaries(NAME.filter(lambda n, t=table: n not in cf.OUR_KEYS[t]), SCALAR, max_size=3))
        entries = [f"{k} = {v}" for k, v in items.items()] + [f"{k} = {_value(v)}" for k, v in extra.items()]
        order = draw(st.permutations(entries))
        for entry in order:
            if draw(st.booleans()):
                lines.append(draw(COMMENT))
            lines.append(entry)
        blocks.append("\n".join(lines))
    names = draw(st.lists(NAME.filter(lambda n: n not in cf.OUR_KEYS and n != "tracker"), max_size=6, unique=True))
    cut = draw(st.integers(0, min(2, len(names))))
    top_names, foreign_names = names[:cut], names[cut:]
    for name in foreign_names:
        header = draw(st.sampled_from([f"[{name}]", f"[tracker.providers.{name}]", f"[[{name}]]"]))
        body = draw(st.dictionaries(NAME, SCALAR, max_size=3))
        lines = [draw(COMMENT)] if draw(st.booleans()) else []
        lines += [header, *(f"{k} = {_value(v)}" for k, v in body.items())]
        blocks.append("\n".join(lines))
    blocks = draw(st.permutations(blocks))
    head = [f"{k} = {_value(draw(SCALAR))}" for k in top_names]  # top-level keys come first
    return "\n".join(head) + ("\n\n" if head else "") + "\n\n".join(blocks) + "\n"


def _without_ours(doc: dict[str, object]) -> dict[str, object]:
    out = {}
    for name, value in doc.items():
        if name in cf.OUR_KEYS and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in cf.OUR_KEYS[name]}
            if not value:
                continue  # a table of ours with nothing else in it
        out[name] = value
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), old_oauth=st.booleans(), oauth=st.booleans(), crlf=st.booleans())
def test_property_any_foreign_content_survives_a_save(data: st.DataObject, old_oauth: bool, oauth: bool,
                                                       crlf: bool) -> None:
    source = data.draw(foreign_file(old_oauth=old_oauth))
    old = cf.parse(source.encode())  # the generator makes a valid file holding the old session
    assert old is not None and (old.oauth is not None) == old_oauth
    if crlf:
        source = source.replace("\n", "\r\n")
    session = oauth_session() if oauth else password_session()
    out = cf.render(session, source.encode())
    assert cf.parse(out) == session  # our values are the new ones
    text = out.decode()
    assert ("\r\n" in text) == crlf
    assert _without_ours(tomllib.loads(text)) == _without_ours(tomllib.loads(source))  # same data
    plain_source, plain_out = source.replace("\r\n", "\n"), text.replace("\r\n", "\n")
    # every foreign line and comment, byte for byte and in order
    assert [ln for ln in _foreign_lines(plain_out) if ln] == [ln for ln in _foreign_lines(plain_source) if ln]
    if not oauth and not old_oauth:  # a password session over a password session: blank lines too
        assert _foreign_lines(plain_out) == _foreign_lines(plain_source)
    # logging out leaves the same foreign data and lines (or no file, when there were none)
    rest = cf.without_session(out)
    foreign = _without_ours(tomllib.loads(source))
    if rest is None:
        assert foreign == {}
    else:
        assert cf.parse(rest) is None
        assert _without_ours(tomllib.loads(rest.decode())) == foreign
        ours = tuple(cf.OUR_KEYS)  # a table of ours is dropped when nothing else is left in it
        assert [ln for ln in _foreign_lines(rest.decode().replace("\r\n", "\n"), our_headers=ours) if ln] == \
            [ln for ln in _foreign_lines(plain_source, our_headers=ours) if ln]


# -- the other stored sessions ([[other_sessions]]) ----------------------------------------

def other(session: Credentials, at: datetime = T0) -> cf.OtherSession:
    return cf.OtherSession(session, at)


def test_other_sessions_are_laid_out_like_the_active_one_after_it() -> None:
    text = cf.render(password_session(), None, [other(oauth_session())]).decode()
    assert text.startswith(PASSWORD_TEXT + "\n" + cf.ACCOUNTS_COMMENT + "\n[[other_sessions]]\n"
                           'last_used = "2026-02-03T16:30:00Z"\n\n[other_sessions.tokens]\naccess = "oauth-access"\n')
    assert cf.parse(text.encode()) == password_session()
    assert cf.parse_others(text.encode()) == [other(oauth_session())]


def test_a_save_that_leaves_the_others_unchanged_keeps_their_bytes() -> None:
    source = cf.render(password_session(), FOREIGN.encode(), [other(oauth_session()), other(password_session("x", "y"))])
    block = source[source.index(b"[[other_sessions]]"):]
    out = cf.render(password_session("a2", "r2"), source)
    assert out.endswith(block)
    assert cf.parse(out) == password_session("a2", "r2")


def test_rewriting_the_others_keeps_every_foreign_byte_around_them() -> None:
    source = cf.render(password_session(), FOREIGN.encode(), [other(oauth_session())])
    source += b"\n# after the others, somebody's table\n[zz_after]\nk = 1\n"
    out = cf.render(oauth_session(), source, [other(password_session())])
    assert cf.parse(out) == oauth_session() and cf.parse_others(out) == [other(password_session())]
    assert b"\n# after the others, somebody's table\n[zz_after]\nk = 1\n" in out
    assert [ln for ln in _foreign_lines(out.decode(), our_headers=("session", "oauth")) if ln
            and not ln.startswith(("[other_sessions", "last_used", cf.ACCOUNTS_COMMENT))][:5] == \
        [ln for ln in _foreign_lines(FOREIGN) if ln][:5]
    gone = cf.without_session(out, [])
    assert b"other_sessions" not in gone and cf.parse(gone) is None
    assert tomllib.loads(gone.decode())["zz_after"] == {"k": 1}


def test_an_entry_we_cannot_read_is_written_back_as_it_was() -> None:
    source = cf.render(password_session(), None, [other(oauth_session())])
    source += b'\n[[other_sessions]]\nfuture_format = 2\n[other_sessions.tokens]\nmystery = true\n'
    others = cf.parse_others(source)
    assert [o.credentials for o in others] == [oauth_session(), None]
    out = cf.render(password_session("a2", "r2"), source, others[1:])  # the first one became active elsewhere
    assert cf.parse_others(out)[0].raw == {"future_format": 2, "tokens": {"mystery": True}}


def test_a_foreign_table_named_like_ours_refuses_the_edit_instead_of_dropping_it() -> None:
    source = PASSWORD_TEXT.encode() + b'\n[other_sessions]\nowner = "someone else"\n'
    assert cf.render(password_session("a2", "r2"), source).startswith(b"[tokens]")  # untouched: fine
    with pytest.raises(cf.EditRefusedError):
        cf.render(password_session(), source, [other(oauth_session())])


def test_a_nan_in_foreign_data_is_not_mistaken_for_a_change() -> None:
    source = FOREIGN + "\n[metrics]\nratio = nan\nvalues = [nan, -0.0, inf]\n"
    out = cf.render(password_session(), source.encode()).decode()
    assert out == FOREIGN_SAVED + "\n[metrics]\nratio = nan\nvalues = [nan, -0.0, inf]\n"
    rest = cf.without_session(out.encode())
    assert rest is not None and rest.decode().endswith("\n[metrics]\nratio = nan\nvalues = [nan, -0.0, inf]\n")


@pytest.mark.parametrize("text", [
    'a = """\n[not.a.header]\n"""\n[tokens]\naccess = "x"\n',
    "a = '''\n[not.a.header]\n'''\n[tokens]\naccess = \"x\"\n",
    'a = [\n  "[", "]",\n[1, 2],\n]\n[tokens]\naccess = "x"\n',
    'a = "esc \\" [x]"\n["quoted ] key"]\nk = 1\n[tokens]\naccess = "x"\n',
    'a = """two "" quotes"""""\n[tokens]\naccess = "x"\n',
])
def test_the_scanner_finds_only_real_headers(text: str) -> None:
    sections = cf._sections(text)
    assert sections is not None
    assert "".join(s.body + s.trailer for s in sections) == text
    assert [s.name for s in sections if s.kind == "ours"] == ["tokens"]
    assert tomllib.loads(text)  # each is valid TOML


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), crlf=st.booleans(), count=st.integers(0, 3))
def test_property_rewriting_the_other_sessions_keeps_any_foreign_content(data: st.DataObject, crlf: bool,
                                                                          count: int) -> None:
    source = data.draw(foreign_file())
    if crlf:
        source = source.replace("\n", "\r\n")
    first = [other(oauth_session()) for _ in range(count)]
    with_others = cf.render(password_session(), source.encode(), first)
    assert cf.parse_others(with_others) == first
    again = cf.render(oauth_session(), with_others, [other(password_session("x", "y"))])
    for out in (with_others, again, cf.without_session(again, []) or b""):
        text = out.decode()
        assert ("\r\n" in text) == (crlf and bool(text))
        kept = {k: v for k, v in _without_ours(tomllib.loads(text)).items() if k != cf.ACCOUNTS}
        assert kept == _without_ours(tomllib.loads(source))
