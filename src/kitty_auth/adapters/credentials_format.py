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
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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


class FormatError(ValueError):
    """The file is not a credentials file; the message never quotes a value from it."""


# -- reading -------------------------------------------------------------------------------


def parse(data: bytes) -> Credentials | None:
    """The session stored in ``data``; None when it holds none. FormatError when unusable."""
    if not data.strip():
        raise FormatError("empty file")  # a torn or truncated write, not another program's file
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
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


def render(credentials: Credentials, existing: bytes | None) -> bytes:
    """The file text holding ``credentials``, edited into ``existing`` (a file's bytes) if any."""
    wanted = canonical(credentials)
    values = _values(wanted)
    edited = _edited(existing, values, lambda out: parse(out) == wanted)
    if edited is not None:
        return edited
    import tomlkit  # lazy: only writers pay for it

    doc = tomlkit.document()
    _apply(doc, values)
    return doc.as_string().encode("utf-8")


def without_session(existing: bytes) -> bytes | None:
    """``existing`` with our keys removed; None when nothing else would remain (or unparsable)."""
    values = {name: dict.fromkeys(keys) for name, keys in OUR_KEYS.items()}
    edited = _edited(existing, values, lambda out: parse(out) is None)
    if edited is None or not tomllib.loads(edited.decode("utf-8")):
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


def _edited(existing: bytes | None, values: dict[str, dict[str, Any]], wanted: Any) -> bytes | None:
    """``existing`` with ``values`` edited in, or None when that cannot be done faithfully.

    First table by table (``_splice``): only our tables' text is parsed and rewritten, every other
    byte is copied; then, for layouts it cannot handle (our keys in an inline table or under
    dotted keys), the whole document through tomlkit. An edit counts only if the result passes
    ``wanted`` and holds the same foreign data as before.
    """
    if existing is None:
        return None
    try:
        text = existing.decode("utf-8")
        before = _foreign_data(tomllib.loads(text))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # not a file we can edit: replaced
    crlf = "\r\n" in text and "\n" not in text.replace("\r\n", "")
    for edit in (_splice, _edit_document):
        try:
            out = edit(text, values)
        except (ValueError, TypeError, KeyError, AttributeError, LookupError):
            out = None  # tomlkit's errors derive from ValueError
        if out is None:
            continue
        if crlf:
            out = re.sub(r"(?<!\r)\n", "\r\n", out)  # tomlkit adds LF lines; keep the file's CRLF
        data = out.encode("utf-8")
        try:
            if wanted(data) and _foreign_data(tomllib.loads(out)) == before:
                return data
        except (FormatError, tomllib.TOMLDecodeError):
            continue
    return None


def _foreign_data(doc: dict[str, Any]) -> dict[str, Any]:
    """What in a parsed file is not ours (a table of ours left empty, or not a table, is ours)."""
    rest: dict[str, Any] = {}
    for name, value in doc.items():
        if name in OUR_KEYS:
            value = {k: v for k, v in value.items() if k not in OUR_KEYS[name]} if isinstance(value, dict) else None
            if not value:
                continue
        rest[name] = value
    return rest


_HEADER_LINE = re.compile(r"[ \t]*\[")
_SPLICE_LIMIT = 256 * 1024  # finding the headers re-parses prefixes: quadratic, so bounded


def _splice(text: str, values: dict[str, dict[str, Any]]) -> str | None:
    """Edit our ``[name]`` tables one by one, copying every other section verbatim.

    tomlkit round-trips most files exactly, but not all (out-of-order tables around an array of
    tables come back regrouped), so the document is cut at its table headers and only our
    sections go through it. New tables of ours are appended at the end.
    """
    sections = _sections(text)
    if sections is None:
        return None
    import tomlkit

    out: list[str] = []
    seen: set[str] = set()
    for name, section in sections:
        if name in values and name not in seen:
            seen.add(name)
            doc = tomlkit.parse(section)
            _apply(doc, {name: values[name]}, create=False)
            section = doc.as_string()
        out.append(section)
    missing = {name: vals for name, vals in values.items() if name not in seen}
    addition = tomlkit.document()
    _apply(addition, missing)
    added = addition.as_string()
    body = "".join(out)
    if added:
        if body and not body.endswith("\n"):
            body += "\n"
        if body.strip() and not body.endswith("\n\n"):
            body += "\n"  # a blank line between the file and our new tables
    return body + added


def _sections(text: str) -> list[tuple[str | None, str]] | None:
    """``text`` cut before each table header: ``(name, text)``, name None but for a plain ``[name]``.

    A line starting with ``[`` is a header only where the text before it is complete TOML (not
    inside a multi-line string or array).
    """
    if len(text) > _SPLICE_LIMIT:
        return None
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _HEADER_LINE.match(line) and _complete("".join(lines[:i]))]
    sections: list[tuple[str | None, str]] = []
    if not starts or starts[0] > 0:
        sections.append((None, "".join(lines[: starts[0] if starts else len(lines)])))
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        sections.append((_plain_table_name(lines[start]), "".join(lines[start:end])))
    return sections


def _complete(prefix: str) -> bool:
    try:
        tomllib.loads(prefix)
    except tomllib.TOMLDecodeError:
        return False
    return True


def _plain_table_name(header: str) -> str | None:
    """``name`` for a ``[name]`` header line; None for ``[a.b]``, ``[[name]]`` and the rest."""
    try:
        doc = tomllib.loads(header)
    except tomllib.TOMLDecodeError:
        return None
    if len(doc) != 1:
        return None
    (name, value), = doc.items()
    return name if value == {} else None


def _edit_document(text: str, values: dict[str, dict[str, Any]]) -> str:
    import tomlkit

    doc = tomlkit.parse(text)
    _apply(doc, values)
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
        _drop_if_bare(doc, name)


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
    """Set (or, for None, remove) one of our keys, touching nothing else."""
    if isinstance(value, list):
        if key in table and _same(table[key], value):
            return
        value = _teams(value)
    if value is None:
        if key in table:
            del table[key]
        return
    if key in table:
        if _same(table[key], value):
            return  # keep the bytes as they are
        table[key] = value  # replaced in place; a trailing comment stays
        return
    container = getattr(table, "value", None)
    body = getattr(container, "body", None)
    last_key = None
    if isinstance(body, list):
        for k, item in body:
            if k is None:
                continue  # a blank line or a comment
            if _is_table_like(item) and not k.is_dotted():
                break  # sub-tables and arrays of tables come after the keys
            last_key = k
    if last_key is not None:
        # After the last key: tomlkit alone would append after the table's trailing comments,
        # which belong to the next table. (A private method: should a tomlkit release change it,
        # the key is appended the public way, after those comments.)
        try:
            container._insert_after(last_key, key, value)
            return
        except (AttributeError, TypeError):
            pass
    table[key] = value


def _is_table_like(item: object) -> bool:
    from tomlkit.items import AoT, Table

    return isinstance(item, Table | AoT)


def _same(current: Any, value: Any) -> bool:
    plain = current.unwrap() if hasattr(current, "unwrap") else current
    wanted = value.unwrap() if hasattr(value, "unwrap") else value
    return type(plain) is type(wanted) and plain == wanted


def _drop_if_bare(doc: Any, name: str) -> None:
    """Remove our table ``name`` when it holds no key and no comment (nothing anyone wrote)."""
    from tomlkit.items import Comment, Table

    table = doc.get(name)
    if not isinstance(table, Table) or len(table) > 0:
        return
    if any(isinstance(item, Comment) for _, item in table.value.body) or table.trivia.comment:
        return
    del doc[name]
