"""The credentials file's TOML layout: a session to and from text, keeping everything that is not ours.

Layout (CONTRACT.md, "Files and settings"); the password part is exactly what the spec-kitty
2.1.3 host's own ``CredentialStore`` reads and writes, so either side reads the other's file::

    [tokens]
    access = "eyJ..."
    refresh = "eyJ..."                  # absent only for a machine session whose grant gave none
    access_expires_at = "2026-02-03T16:45:00Z"
    refresh_expires_at = "2026-02-10T16:30:00Z"   # absent: unknown (OAuth), valid until refused
    access_lifetime_s = 60              # opaque access tokens: their lifetime when issued (whole
                                        # seconds; sets the refresh margin); absent: 15 min assumed

    [user]
    username = "user@example.com"
    team_slug = "acme"                  # when known; kept across refreshes
    email = "user@example.com"          # OAuth: identity from GET /api/v1/me
    name = "User Name"
    user_id = "42"
    teams = [                           # OAuth: the teams from /me, rewritten whole on each save
        {id = "7", slug = "acme", name = "Acme", role = "owner", is_private_teamspace = true},
    ]

    [server]
    url = "https://spec-kitty-dev.fly.dev"

    [session]                           # absent for a password session without an id
    method = "web"                      # "web", "device" or "machine"; absent: "password"
    id = "..."                          # the server's session id, when it named one

    [oauth]                             # OAuth sessions: where they are refreshed and revoked
    client_id = "spec-kitty-cli"
    token_endpoint = "https://.../oauth/token/"
    revocation_endpoint = "https://.../oauth/revoke_token/"

    [machine]                           # machine sessions (login --machine) only
    client_id = "ci-bot"                # SPEC_KITTY_MACHINE_CLIENT_ID at login; its secret is never
                                        # stored (nor the secret file's path): a session without a
                                        # refresh token is renewed with the secret from the
                                        # renewing process's environment

Reading (``parse``) uses the standard library's ``tomllib``: fast, and all ``auth status``
needs. Instants are read with ``Z``, ``+00:00`` or any other offset, and without a zone as UTC
(spec-kitty 2.0.x wrote ``datetime.utcnow().isoformat()``, 2.1.3 aware ``isoformat()``, both
maybe with microseconds); they are written as ``YYYY-MM-DDTHH:MM:SSZ``. A file with tables
but no ``[tokens] access``/``refresh`` holds no session (another program keeps its tables
here); an empty file, or one whose session fields are missing or mistyped, is corrupt.

Writing (``render``, ``without_session``) edits the existing file. It is cut at its table
headers and only our ``[name]`` sections go through ``tomlkit`` (which round-trips most files
exactly, but regroups out-of-order tables around an array of tables); every other byte is
copied. In our tables only our keys change, in place: an unchanged value keeps its bytes, a
changed one keeps its trailing comment, a key that no longer applies is removed, a new one goes
after the table's last key (so a comment introducing the next table stays with it), a table of
ours left with no key and no comment is dropped, and tables we lack are appended at the end. In
a file with CRLF line endings the lines we add get CRLF too (tomlkit would add LF). Layouts the
cut cannot handle (our keys in an inline table or under dotted keys) go through tomlkit whole.
An edit is kept only if it reads back as exactly the new session and the foreign data parses
to what it was; otherwise, and for a file that does not parse, a fresh file is written: a
session is never stored in a form that would not load.
"""

from __future__ import annotations

import re
import struct
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from kitty_auth.domain.model import (
    MAX_LIFETIME,
    Credentials,
    Identity,
    LoginMethod,
    MachineClient,
    OAuthClient,
    Team,
    TokenPair,
    format_instant,
)

# Our keys, table by table; everything else in the file belongs to someone else.
OUR_KEYS: dict[str, tuple[str, ...]] = {
    "tokens": ("access", "refresh", "access_expires_at", "refresh_expires_at", "access_lifetime_s"),
    "user": ("username", "team_slug", "email", "name", "user_id", "teams"),
    "server": ("url",),
    "session": ("method", "id"),
    "oauth": ("client_id", "token_endpoint", "revocation_endpoint"),
    "machine": ("client_id",),
}


# What tomllib (or decoding) raises for bytes that are not a TOML document we can read: invalid UTF-8
# or TOML (both ValueErrors), an integer of over 4,300 digits (a plain ValueError), deep nesting.
NOT_TOML: Final = (ValueError, RecursionError)


class FormatError(ValueError):
    """The file is not a credentials file; the message never quotes a value from it."""


# -- reading -------------------------------------------------------------------------------


def parse(data: bytes) -> Credentials | None:
    """The session stored in ``data``; None when it holds none. FormatError when unusable."""
    if not data.strip():
        raise FormatError("empty file")  # a torn or truncated write, not another program's file
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except NOT_TOML:
        raise FormatError("not valid TOML") from None
    try:
        return _session(doc)
    except (KeyError, TypeError, ValueError, OverflowError):
        # The exception may quote a field value (a token); keep it out of the chain.
        raise FormatError("missing or mistyped field") from None


def parse_timestamp(text: object) -> datetime:
    """An expiry instant as written by us or by any spec-kitty 2.x; naive means UTC. ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("not a timestamp")
    value = text.strip()
    if value[-1] in "zZ":
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _session(doc: dict[str, Any]) -> Credentials | None:
    tokens = doc.get("tokens")
    if tokens is None or (isinstance(tokens, dict) and "access" not in tokens and "refresh" not in tokens):
        return None  # no session here (perhaps only another program's tables)
    tokens = _table(doc, "tokens")
    user = _table(doc, "user")
    server = _table(doc, "server")
    refresh_at = tokens.get("refresh_expires_at")
    machine = _machine(_optional_table(doc, "machine"))
    pair = TokenPair(
        access=_text(tokens, "access"),
        # Only a machine session may lack a refresh token (its grant renews it).
        refresh=_text(tokens, "refresh") if machine is None or "refresh" in tokens else None,
        access_expires_at=parse_timestamp(tokens["access_expires_at"]),
        refresh_expires_at=None if refresh_at is None else parse_timestamp(refresh_at),
        opaque_access_lifetime=_lifetime(tokens.get("access_lifetime_s")),
    )
    session = _optional_table(doc, "session")
    method = LoginMethod(_optional_text(session, "method") or LoginMethod.PASSWORD)
    oauth = _oauth(_optional_table(doc, "oauth"))
    if (oauth is None) != (method is LoginMethod.PASSWORD):
        raise ValueError("an OAuth session needs its [oauth] client, a password session none")
    if (machine is None) != (method is not LoginMethod.MACHINE):
        raise ValueError("a machine session needs its [machine] client, other sessions none")
    return Credentials(
        tokens=pair,
        username=_text(user, "username"),
        server_url=_text(server, "url"),
        team_slug=_optional_text(user, "team_slug"),
        login_method=method,
        session_id=_optional_text(session, "id"),
        oauth=oauth,
        identity=_identity(user),
        machine=machine,
    )


def _lifetime(value: object) -> timedelta | None:
    """``access_lifetime_s``: whole seconds. Anything else counts as absent (the default lifetime
    is assumed): it only sets the refresh margin, never worth treating the session as corrupt."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIFETIME.total_seconds():
        return None
    return timedelta(seconds=value)


def _lifetime_seconds(lifetime: timedelta | None) -> int | None:
    """A lifetime as the file keeps it: whole seconds, at least 1 (None stays None)."""
    if lifetime is None or lifetime <= timedelta(0):
        return None
    return max(1, min(round(lifetime.total_seconds()), int(MAX_LIFETIME.total_seconds())))


def _oauth(table: dict[str, Any]) -> OAuthClient | None:
    if "client_id" not in table:
        return None
    return OAuthClient(
        client_id=_text(table, "client_id"),
        token_endpoint=_text(table, "token_endpoint"),
        revocation_endpoint=_optional_text(table, "revocation_endpoint"),
    )


def _machine(table: dict[str, Any]) -> MachineClient | None:
    if "client_id" not in table:
        return None
    client_id = _text(table, "client_id")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in client_id):  # `status` prints it
        raise ValueError("client_id")
    return MachineClient(client_id=client_id)


def _identity(user: dict[str, Any]) -> Identity | None:
    if "email" not in user:
        return None
    teams = user.get("teams", [])
    if not isinstance(teams, list):
        raise TypeError("teams")
    return Identity(
        email=_string(user, "email"),
        name=_string(user, "name"),
        user_id=_string(user, "user_id"),
        teams=tuple(_team(entry) for entry in teams),
    )


def _team(entry: object) -> Team:
    if not isinstance(entry, dict):
        raise TypeError("team")
    private = entry.get("is_private_teamspace", False)
    if not isinstance(private, bool):
        raise TypeError("is_private_teamspace")
    return Team(id=_text(entry, "id"), slug=_text(entry, "slug"), name=_string(entry, "name"),
                role=_string(entry, "role"), is_private_teamspace=private)


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc[name]
    if not isinstance(value, dict):
        raise TypeError(name)
    return value


def _optional_table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return _table(doc, name) if name in doc else {}


def _text(table: dict[str, Any], name: str) -> str:
    """A required, non-blank string."""
    value = table[name]
    if not isinstance(value, str) or not value.strip():
        raise TypeError(name)
    return value


def _optional_text(table: dict[str, Any], name: str) -> str | None:
    """A string that may be absent; absent or empty is None."""
    value = table.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(name)
    return value or None


def _string(table: dict[str, Any], name: str) -> str:
    """A string that may be absent or empty (``""`` then)."""
    return _optional_text(table, name) or ""


# -- writing -------------------------------------------------------------------------------


class EditRefusedError(FormatError):
    """The file parses, but our keys cannot be edited into it without changing someone else's data.

    Nothing is written: the caller keeps the file as it is and says so (never a fresh file that
    would drop another program's tables).
    """


# What a save does with the other stored sessions (``[[other_sessions]]``): left exactly as they are.
UNCHANGED: Final = None


@dataclass(frozen=True)
class OtherSession:
    """A stored session that is not the active one, as the file keeps it under ``[[other_sessions]]``.

    ``credentials`` is None for an entry we cannot read (written by a newer or broken program):
    it is kept as ``raw`` and written back unchanged, never dropped. ``last_used`` is when it was
    last the active session or last refreshed (informational: the list is kept most recent first).
    """

    credentials: Credentials | None
    last_used: datetime | None = None
    raw: dict[str, Any] | None = None


def parse_others(data: bytes) -> list[OtherSession]:
    """The other stored sessions in ``data``, most recently used first. FormatError when not TOML."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except NOT_TOML:
        raise FormatError("not valid TOML") from None
    entries = doc.get(ACCOUNTS)
    if not isinstance(entries, list):
        return []
    others: list[OtherSession] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue  # not an account: nothing we could keep in an array of tables anyway
        try:
            credentials = _session(entry)
            last_used = parse_timestamp(entry["last_used"]) if "last_used" in entry else None
        except (KeyError, TypeError, ValueError, OverflowError):
            credentials, last_used = None, None
        others.append(OtherSession(credentials, last_used, None if credentials is not None else entry))
    return others


def canonical(credentials: Credentials) -> Credentials:
    """``credentials`` as they read back from the file (instants to the second; "" as None)."""
    tokens = credentials.tokens
    refresh_at = tokens.refresh_expires_at
    return replace(
        credentials,
        tokens=replace(
            tokens,
            access_expires_at=parse_timestamp(format_instant(tokens.access_expires_at)),
            refresh_expires_at=None if refresh_at is None else parse_timestamp(format_instant(refresh_at)),
            opaque_access_lifetime=_lifetime(_lifetime_seconds(tokens.opaque_access_lifetime)),
        ),
        team_slug=credentials.team_slug or None,
        session_id=credentials.session_id or None,
        oauth=credentials.oauth and replace(
            credentials.oauth, revocation_endpoint=credentials.oauth.revocation_endpoint or None),
    )


def render(credentials: Credentials, existing: bytes | None,
           others: Sequence[OtherSession] | None = UNCHANGED) -> bytes:
    """The file text holding ``credentials`` as the active session, edited into ``existing``.

    ``others`` replaces the other stored sessions (``[[other_sessions]]``); ``UNCHANGED`` (None) keeps
    their bytes as they are. ``existing`` None or not TOML: a fresh file (the repository keeps an
    unparsable file aside before replacing it). EditRefusedError when ``existing`` parses but
    cannot be edited faithfully.
    """
    wanted = canonical(credentials)
    values = _values(wanted)
    expected_others = None if others is None else [_canonical_other(o) for o in others]
    if existing is None or not _is_toml_text(existing):
        return _fresh(values, expected_others)

    def check(out: bytes) -> bool:
        return parse(out) == wanted and (expected_others is None or _others_match(out, expected_others))

    return _edited(existing, values, expected_others, check)


def without_session(existing: bytes, others: Sequence[OtherSession] | None = UNCHANGED) -> bytes | None:
    """``existing`` with the active session's keys removed (and ``others`` as the other sessions).

    None when nothing would remain (the caller removes the file) or ``existing`` is not TOML.
    EditRefusedError when it parses but cannot be edited faithfully.
    """
    if not _is_toml_text(existing):
        return None
    values = {name: dict.fromkeys(keys) for name, keys in OUR_KEYS.items()}
    expected_others = None if others is None else [_canonical_other(o) for o in others]

    def check(out: bytes) -> bool:
        return (not out.strip() or parse(out) is None) and (expected_others is None or _others_match(out, expected_others))

    edited = _edited(existing, values, expected_others, check)
    if not tomllib.loads(edited.decode("utf-8")):
        return None
    return edited


def _values(c: Credentials) -> dict[str, dict[str, Any]]:
    """Our keys' new values, table by table; None removes a key."""
    t, ident, oauth, machine = c.tokens, c.identity, c.oauth, c.machine
    password = c.login_method is LoginMethod.PASSWORD
    return {
        "tokens": {
            "access": t.access,
            "refresh": t.refresh,
            "access_expires_at": format_instant(t.access_expires_at),
            "refresh_expires_at": t.refresh_expires_at and format_instant(t.refresh_expires_at),
            "access_lifetime_s": _lifetime_seconds(t.opaque_access_lifetime),
        },
        "user": {
            "username": c.username,
            "team_slug": c.team_slug,
            "email": ident.email if ident else None,
            "name": ident.name or None if ident else None,
            "user_id": ident.user_id or None if ident else None,
            "teams": [_team_fields(team) for team in ident.teams] if ident and ident.teams else None,
        },
        "server": {"url": c.server_url},
        "session": {"method": None if password else c.login_method.value, "id": c.session_id},
        "oauth": {
            "client_id": oauth and oauth.client_id,
            "token_endpoint": oauth and oauth.token_endpoint,
            "revocation_endpoint": oauth and oauth.revocation_endpoint,
        },
        "machine": {"client_id": machine and machine.client_id},
    }


def _canonical_other(other: OtherSession) -> OtherSession:
    if other.credentials is None:
        return other
    last_used = other.last_used and parse_timestamp(format_instant(other.last_used))
    return OtherSession(canonical(other.credentials), last_used)


def _others_match(out: bytes, expected: list[OtherSession]) -> bool:
    return [(o.credentials, o.last_used, _plain(o.raw)) for o in parse_others(out)] == \
        [(o.credentials, o.last_used, _plain(o.raw)) for o in expected]


def _is_toml_text(data: bytes) -> bool:
    try:
        tomllib.loads(data.decode("utf-8"))
    except NOT_TOML:
        return False
    return True


# -- the edit ------------------------------------------------------------------------------

ACCOUNTS: Final = "other_sessions"  # [[other_sessions]]: the other stored sessions, rewritten whole by each save that changes them
ACCOUNTS_COMMENT: Final = "# Other sessions, kept by kitty-auth (`kitty-auth auth switch` makes one the active one)."


def _fresh(values: dict[str, dict[str, Any]], others: list[OtherSession] | None) -> bytes:
    text = _table_text(values)
    block = _accounts_text(others or [])
    if block:
        text += ("\n" if text else "") + block
    return text.encode("utf-8")


def _edited(existing: bytes, values: dict[str, dict[str, Any]], others: list[OtherSession] | None,
            check: Callable[[bytes], bool]) -> bytes:
    """``existing`` with ``values`` (and ``others``) edited in; EditRefusedError when that cannot be
    done without changing someone else's data.

    First section by section (``_splice``): only our sections are parsed and rewritten, every other
    byte is copied. Then, for layouts the cut cannot handle (our keys in an inline table or under
    dotted keys), the whole document through tomlkit, which keeps every value but may regroup
    some tables. A result counts only if it passes ``check`` and holds exactly the same foreign
    data as before (compared so that NaN equals NaN: ``nan`` is valid TOML).
    """
    text = existing.decode("utf-8")
    before = _plain(_foreign_data(tomllib.loads(text)))
    crlf = "\r\n" in text and "\n" not in text.replace("\r\n", "")
    for edit in (_splice, _edit_document):
        try:
            out = edit(text, values, others)
        except (ValueError, TypeError, KeyError, AttributeError, LookupError, RecursionError):
            out = None  # tomlkit's errors derive from ValueError
        if out is None:
            continue
        if crlf:
            out = re.sub(r"(?<!\r)\n", "\r\n", out)  # tomlkit adds LF lines; keep the file's CRLF
        data = out.encode("utf-8")
        try:
            if check(data) and _plain(_foreign_data(tomllib.loads(out))) == before:
                return data
        except NOT_TOML:  # FormatError is a ValueError too
            continue
    raise EditRefusedError("the file's layout cannot be updated without changing data other programs keep in it")


def _foreign_data(doc: dict[str, Any]) -> dict[str, Any]:
    """What in a parsed file is not ours (a table of ours left empty, or not a table, is ours)."""
    rest: dict[str, Any] = {}
    for name, value in doc.items():
        if name == ACCOUNTS and isinstance(value, list):
            continue  # the other sessions: ours, checked by the caller
        if name in OUR_KEYS:
            value = {k: v for k, v in value.items() if k not in OUR_KEYS[name]} if isinstance(value, dict) else None
            if not value:
                continue
        rest[name] = value
    return rest


def _plain(value: Any) -> Any:
    """``value`` in a form whose ``==`` is exact: floats by their bits (NaN equals NaN, -0.0 is not 0.0)."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class _Section:
    """One piece of the file: the text before the first header, or a header and what follows it."""

    kind: str  # "top", "ours" (a plain [name] table of ours), "accounts", "other"
    name: str | None
    body: str  # the header line and the table's keys (its comments between keys included)
    trailer: str  # blank and comment lines after the table's last key: they introduce what follows


def _splice(text: str, values: dict[str, dict[str, Any]], others: list[OtherSession] | None) -> str | None:
    """Edit our ``[name]`` tables one by one and copy every other section verbatim.

    tomlkit round-trips most files exactly, but not all (out-of-order tables around an array of
    tables come back regrouped), so the document is cut at its table headers and only our
    sections go through it. In a table of ours, the blank and comment lines after its last key
    introduce what follows and stay where they are; a new key goes after the last key. Tables of
    ours that are missing are appended at the end, the other sessions after them. Linear in the
    size of the file.
    """
    sections = _sections(text)
    if sections is None:
        return None
    import tomlkit

    out: list[str] = []
    seen: set[str] = set()
    accounts_written = False
    for section in sections:
        if section.kind == "ours" and section.name in values and section.name not in seen:
            assert section.name is not None
            seen.add(section.name)
            doc = tomlkit.parse(section.body)
            _apply(doc, {section.name: values[section.name]}, create=False)
            body = doc.as_string()
            if _is_bare(body, section.name):
                body = ""
            out.append(body + section.trailer)
        elif section.kind == "accounts" and others is not None:
            if not accounts_written:
                accounts_written = True
                out.append(_accounts_text(others, comment=False))
            out.append(section.trailer)
        else:
            out.append(section.body + section.trailer)
    missing = {name: vals for name, vals in values.items() if name not in seen}
    added = _table_text(missing)
    if others is not None and not accounts_written:
        block = _accounts_text(others)
        added += ("\n" if added and block else "") + block
    body = "".join(out)
    if added:
        if body and not body.endswith("\n"):
            body += "\n"
        if body.strip() and not body.endswith("\n\n"):
            body += "\n"  # a blank line between the file and our new tables
    return body + added


def _sections(text: str) -> list[_Section] | None:
    """``text`` cut before each table header, in one pass; None when it cannot be scanned.

    A line whose first character (after spaces) is ``[`` is a header only outside strings,
    arrays and inline tables: a small scanner follows TOML's strings, comments and brackets.
    Each section's trailer starts at the line after its last token (a key's value, or the header).
    """
    pieces = _scan(text)
    if pieces is None:
        return None
    sections: list[_Section] = []
    for start, header_end, last, end in pieces:
        newline = text.find("\n", last, end)
        split = end if newline < 0 else newline + 1
        kind, name = ("top", None) if header_end is None else _header_kind(text[start:header_end])
        sections.append(_Section(kind, name, text[start:split], text[split:end]))
    return sections


def _scan(text: str) -> list[tuple[int, int | None, int, int]] | None:
    """The file's pieces: (start, end of its header or None before the first one, end of its last
    token, end). One pass over the text."""
    pieces: list[tuple[int, int | None, int, int]] = []
    start, header_end, last = 0, None, 0
    depth = 0
    line_start = True  # only spaces since the last newline, outside strings and brackets
    line_begin = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line_start, line_begin = True, i + 1
            i += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if c in "\"'":
            i = _string_end(text, i)
            if i < 0:
                return None
        elif c == "[" and depth == 0 and line_start:
            if line_begin > 0 or header_end is not None:
                pieces.append((start, header_end, last, line_begin))
            i = _header_end(text, i)
            if i < 0:
                return None
            start, header_end = line_begin, i
        else:
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth < 0:
                    return None
            i += 1
        line_start = False
        last = i
    if depth != 0:
        return None
    pieces.append((start, header_end, last, n))
    return pieces


def _string_end(text: str, i: int) -> int:
    """Where the string starting at ``text[i]`` ends (just after its closing quote); -1 if it does not."""
    quote = text[i]
    n = len(text)
    if text.startswith(quote * 3, i):
        j = i + 3
        while j < n:
            if quote == '"' and text[j] == "\\":
                j += 2
                continue
            if text.startswith(quote * 3, j):
                end = j + 3
                while end < n and text[end] == quote and end - j < 5:  # up to two quotes of content
                    end += 1
                return end
            j += 1
        return -1
    j = i + 1
    while j < n:
        ch = text[j]
        if ch == "\n":
            return -1
        if quote == '"' and ch == "\\":
            j += 2
            continue
        if ch == quote:
            return j + 1
        j += 1
    return -1


def _header_end(text: str, i: int) -> int:
    """Just after the closing bracket(s) of the header starting at ``text[i]``; -1 if it has none."""
    j, n = i, len(text)
    while j < n and text[j] == "[":
        j += 1
    while j < n:
        ch = text[j]
        if ch in "\"'":
            j = _string_end(text, j)
            if j < 0:
                return -1
            continue
        if ch == "\n":
            return -1
        if ch == "]":
            while j < n and text[j] == "]":
                j += 1
            return j
        j += 1
    return -1


def _header_kind(line: str) -> tuple[str, str | None]:
    """("ours", name) for a plain ``[name]`` of ours, ("accounts", None) for the other sessions'
    headers, ("other", None) for the rest."""
    try:
        doc = tomllib.loads(line + "\n")
    except NOT_TOML:
        return "other", None
    if len(doc) != 1:
        return "other", None
    (name, value), = doc.items()
    if name == ACCOUNTS:
        return "accounts", None
    if name in OUR_KEYS and value == {}:
        return "ours", name
    return "other", None


def _is_bare(body: str, name: str) -> bool:
    """Our table ``name`` with no key left and no comment (nothing anyone wrote): dropped."""
    try:
        return "#" not in body and tomllib.loads(body) == {name: {}}
    except NOT_TOML:
        return False


def _table_text(values: dict[str, dict[str, Any]]) -> str:
    """New tables of ours (only those with a value to hold), as text."""
    import tomlkit

    doc = tomlkit.document()
    _apply(doc, values)
    return doc.as_string()


def _accounts_text(others: Sequence[OtherSession], *, comment: bool = True) -> str:
    """The other stored sessions as ``[[other_sessions]]`` tables, each laid out like the active one."""
    if not others:
        return ""
    import tomlkit

    doc = tomlkit.document()
    entries = tomlkit.aot()
    for other in others:
        if other.credentials is None:
            entries.append(tomlkit.item(other.raw or {}))
            continue
        entry = tomlkit.table()
        if other.last_used is not None:
            entry.add("last_used", format_instant(other.last_used))
        for name, vals in _values(canonical(other.credentials)).items():
            table = tomlkit.table()
            for key, value in vals.items():
                if value is not None:
                    table.add(key, _teams(value) if isinstance(value, list) else value)
            if len(table):
                entry.add(name, table)
        entries.append(entry)
    doc.add(ACCOUNTS, entries)
    return (ACCOUNTS_COMMENT + "\n" if comment else "") + doc.as_string()


def _edit_document(text: str, values: dict[str, dict[str, Any]], others: list[OtherSession] | None) -> str:
    import tomlkit

    doc = tomlkit.parse(text)
    _apply(doc, values)
    if others is not None:
        if ACCOUNTS in doc:
            del doc[ACCOUNTS]
        block = _accounts_text(others, comment=False)
        if block:
            doc.append(ACCOUNTS, tomlkit.parse(block)[ACCOUNTS])
    return doc.as_string()


def _apply(doc: Any, values: dict[str, dict[str, Any]], *, create: bool = True) -> None:
    """Put ``values`` into ``doc``'s tables of ours; a table is created only for a value to hold."""
    for name, vals in values.items():
        needed = any(v is not None for v in vals.values())
        table = _our_table(doc, name, create=create and needed)
        if table is None:
            continue
        for key, value in vals.items():
            _put(table, key, value)
        if create and not len(table) and "#" not in table.as_string() and name in doc:
            del doc[name]  # a table of ours left with no key and no comment: nothing anyone wrote


def _team_fields(team: Team) -> dict[str, Any]:
    return {"id": team.id, "slug": team.slug, "name": team.name, "role": team.role,
            "is_private_teamspace": team.is_private_teamspace}


def _teams(teams: list[dict[str, Any]]) -> Any:
    """An array of inline tables, one line per team.

    Not ``[[user.teams]]``: tomlkit files the comments and blank lines that follow an array of
    tables inside its last element, so replacing the array would take another table's comment
    with it; a plain value never owns what follows it.
    """
    import tomlkit

    array = tomlkit.array()
    for fields in teams:
        entry = tomlkit.inline_table()
        entry.update(fields)
        array.append(entry)
    return array.multiline(True)


def _our_table(doc: Any, name: str, *, create: bool) -> Any:
    """Our table ``name`` in ``doc`` (created at the end when asked); a non-table is replaced."""
    import tomlkit

    current = doc.get(name)
    if isinstance(current, dict):  # Table, InlineTable or an out-of-order table's proxy
        return current
    if current is None and not create:
        return None
    if current is not None:
        del doc[name]  # ours, but not a table: it cannot hold a session
    table = tomlkit.table()
    doc.add(name, table)
    return doc[name]


def _put(table: Any, key: str, value: Any) -> None:
    """Set (or, for None, remove) one of our keys, touching nothing else.

    An unchanged value keeps its bytes; a changed one is replaced in place (its trailing comment
    stays); a new one is added at the end of the table, which ``_splice`` has cut just after the
    table's last key.
    """
    if isinstance(value, list):
        if key in table and _same(table[key], value):
            return
        value = _teams(value)
    if value is None:
        if key in table:
            del table[key]
        return
    if key in table and _same(table[key], value):
        return
    table[key] = value


def _same(current: Any, value: Any) -> bool:
    plain = current.unwrap() if hasattr(current, "unwrap") else current
    wanted = value.unwrap() if hasattr(value, "unwrap") else value
    return type(plain) is type(wanted) and plain == wanted
