"""`auth doctor`: judges what the adapters found (files, lock, trust, servers, sessions) into checks, each with its fix.

The adapters gather facts and judge nothing; this module decides, for each fact, whether it is
fine, worth a warning or a problem, and which command fixes it. It never touches the file system
or the network itself: ``DoctorFacts``, ``ServerProbe`` and ``SessionProver`` are its ports
(adapters: ``adapters/doctor_facts.py``, ``adapters/doctor_probe.py``, the session gateway; fakes:
``kitty_auth.testing``). A problem makes `auth doctor` exit 1; warnings do not.

Nothing here ever holds a secret for long or puts one in a sentence: the facts about sessions are
read for their expiries only, and ``SPEC_KITTY_SAAS_TOKEN`` is a yes/no.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kitty_auth.domain.accounts import StoredSession
from kitty_auth.domain.errors import (
    AuthError,
    CredentialsLockTimeoutError,
    InvalidServerUrlError,
    NetworkError,
    NotAuthenticatedError,
    SessionExpiredError,
    TLSVerificationError,
    TokenRejectedError,
)
from kitty_auth.domain.model import Credentials, Identity, LoginMethod, WsToken, format_instant, same_server
from kitty_auth.domain.ports import Clock
from kitty_auth.domain.token_source import TOKEN_VARIABLE

SKEW_WARNING_SECONDS = 60  # a server clock further off than this is worth fixing (other tools care)
SLOW_ANSWER_MS = 3000  # an answer slower than this leaves little of a request's deadline
LOGIN = "spec-kitty auth login"  # the CLI spells commands as the user runs them (``_localised``)
ME_ENDPOINT = "GET /api/v1/me"
WS_TOKEN_ENDPOINT = "POST /api/v1/ws-token/"


class Status(enum.StrEnum):
    """How a check came out; only PROBLEM makes the doctor exit 1."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"
    SKIPPED = "skipped"


_SEVERITY = {Status.SKIPPED: 0, Status.OK: 0, Status.WARNING: 1, Status.PROBLEM: 2}


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: what was looked at, what was found, and the fix when one is needed.

    ``details`` are the same findings as JSON-ready values (paths, modes, milliseconds...).
    """

    name: str
    status: Status
    found: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    def count(self, status: Status) -> int:
        return sum(1 for check in self.checks if check.status is status)

    @property
    def exit_code(self) -> int:
        """0 when nothing is a problem (warnings allowed), 1 otherwise."""
        return 1 if self.count(Status.PROBLEM) else 0


# ------------------------------------------------------------------------------ facts


class PathKind(enum.StrEnum):
    MISSING = "missing"
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"  # a FIFO, a socket, a device...


@dataclass(frozen=True)
class PathFacts:
    """One path as found. ``kind`` is of what the path names (followed through a symlink only where
    a link is fine: the home directory; then ``link_target`` says where it points). ``mode`` and
    ``mine`` are None where POSIX ownership means nothing (Windows); ``error`` when the path could
    not be inspected at all (a parent we may not search)."""

    path: str
    kind: PathKind
    mode: int | None = None
    owner: str | None = None
    mine: bool | None = None
    writable: bool | None = None
    sticky: bool = False
    link_target: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CredentialsFacts:
    """The credentials file: the path (never followed), what reading it (without changing it) gave,
    and the files saves leave beside it."""

    file: PathFacts
    sessions: tuple[StoredSession, ...] = ()
    parse_error: str | None = None  # it is not a credentials file (why, never a value from it)
    read_error: str | None = None  # it could not be read at all
    temporary_files: tuple[str, ...] = ()
    kept_aside: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """The sessions could be read: there is no file, or one that parses."""
        if self.file.error is not None or self.parse_error is not None or self.read_error is not None:
            return False
        return self.file.kind in (PathKind.MISSING, PathKind.FILE)


@dataclass(frozen=True)
class ConfigFacts:
    """config.toml, and the server the next `login` (without --server) would use, as login chooses it."""

    path: str
    exists: bool
    error: str | None = None  # why it cannot be read (its cause: "not valid TOML at line 1...")
    configured_url: str | None = None  # its [sync] server_url
    env_url: str | None = None  # $SPEC_KITTY_SAAS_URL (which wins, and spares reading the file)
    login_server: str | None = None
    login_server_source: str | None = None  # "SPEC_KITTY_SAAS_URL", "[sync] server_url in ...", ...
    login_server_error: str | None = None  # the sentence login would fail with


@dataclass(frozen=True)
class LockFacts:
    """The credentials lock: its path (never followed) and, for a lock file, who holds it now."""

    file: PathFacts
    held: bool | None = None  # None: this platform or file system cannot tell
    holder_pid: int | None = None
    recorded_pid: int | None = None  # the PID written in the file (a holder killed leaves it behind)
    recorded_alive: bool | None = None


@dataclass(frozen=True)
class CertificateSource:
    """$SSL_CERT_FILE or $SSL_CERT_DIR as found. ``certificates``/``ca_certificates``: what a bundle
    holds; for a directory, ``certificates`` counts the hashed names OpenSSL looks certificates up by."""

    variable: str
    path: str
    kind: PathKind
    readable: bool = True
    certificates: int | None = None
    ca_certificates: int | None = None
    error: str | None = None  # why it does not load


@dataclass(frozen=True)
class TrustFacts:
    """What HTTPS connections trust (``adapters/tls_trust.py``)."""

    truststore: bool  # the OS trust store through truststore (else OpenSSL's default paths)
    os_verifier: bool  # the OS verifies certificates itself (macOS, Windows): nothing to count
    system_bundle: str | None = None  # Linux: the distribution's CA bundle added to the context
    system_certificates: int | None = None  # CA certificates in it (or in OpenSSL's default file)
    context_error: str | None = None  # building the SSL context failed: every request fails
    cert_file: CertificateSource | None = None
    cert_dir: CertificateSource | None = None


@dataclass(frozen=True)
class LocalFacts:
    home: PathFacts
    credentials: CredentialsFacts
    config: ConfigFacts
    lock: LockFacts
    trust: TrustFacts
    token_in_env: bool  # $SPEC_KITTY_SAAS_TOKEN is set and not empty (its value is never read here)


@dataclass(frozen=True)
class ServerFacts:
    """One server, probed with one unauthenticated GET of its RFC 8414 metadata URL.

    ``reached``: an HTTP answer came (``error`` says why not: the error login would raise).
    ``login_method``: what `login` would do there (``kind_error``: the error login would raise
    instead). ``rtt_ms``: the request's time, connection and TLS handshake included.
    ``server_time`` (its ``Date`` header) and ``local_time`` (this machine's clock while it
    answered) measure the clock skew.
    """

    url: str
    reached: bool
    error: AuthError | None = None
    status: int | None = None
    rtt_ms: int | None = None
    login_method: LoginMethod | None = None
    kind_error: AuthError | None = None
    server_time: datetime | None = None
    local_time: datetime | None = None

    @property
    def skew_seconds(self) -> int | None:
        """How far the server's clock is ahead of ours (negative: behind); None without a Date."""
        if self.server_time is None or self.local_time is None:
            return None
        return round((self.server_time - self.local_time).total_seconds())


@dataclass(frozen=True)
class SessionProof:
    """What `--check-session` did: the session it used, whether its token was refreshed first, which
    endpoint accepted it (and, for ``me``, whom the server names) or the error that ended it."""

    credentials: Credentials | None
    refreshed: bool = False
    endpoint: str | None = None
    identity: Identity | None = None
    error: AuthError | None = None


# ------------------------------------------------------------------------------ ports


class DoctorFacts(Protocol):
    def local(self) -> LocalFacts:
        """Everything on this machine; changes nothing, never waits for the lock, never raises."""
        ...


class ServerProbe(Protocol):
    def probe(self, urls: Sequence[str]) -> list[ServerFacts]:
        """One unauthenticated request per server (concurrently), in the order given; never raises."""
        ...


class SessionProver(Protocol):
    """The two token-bearing calls `--check-session` may make (only then is a token sent)."""

    def me(self, server_url: str, access_token: str) -> Identity: ...

    def ws_token(self, server_url: str, access_token: str) -> WsToken: ...


class FreshToken(Protocol):
    def execute(self) -> Credentials: ...


class SessionStore(Protocol):
    def load(self) -> Credentials | None: ...


# ------------------------------------------------------------------------------ judging


def _merge(name: str, findings: Sequence[tuple[Status, str, str | None]], details: Mapping[str, Any]) -> Check:
    """One check from several findings: the worst status, the sentences and fixes joined."""
    status = max((s for s, _, _ in findings), key=lambda s: _SEVERITY[s])
    if status in (Status.WARNING, Status.PROBLEM):  # what is fine goes without saying next to what is not
        findings = [f for f in findings if f[0] in (Status.WARNING, Status.PROBLEM)]
    found = "; ".join(text for _, text, _ in findings)
    fixes = [fix for _, _, fix in findings if fix]
    return Check(name, status, found, "; ".join(dict.fromkeys(fixes)) or None, details)


def _mode(mode: int | None) -> str | None:
    return None if mode is None else f"{mode:04o}"


def _path_details(path: PathFacts) -> dict[str, Any]:
    return {"path": path.path, "kind": path.kind.value, "mode": _mode(path.mode), "owner": path.owner,
            "symlink_to": path.link_target}


def _owner_findings(path: PathFacts, what: str, recursive: bool = False) -> list[tuple[Status, str, str | None]]:
    if path.mine is False:
        flag = "-R " if recursive else ""
        return [(Status.PROBLEM, f"{what} {path.path} belongs to {path.owner or 'another user'}, not to you",
                 f'sudo chown {flag}"$USER" {path.path}')]
    return []


def judge_home(home: PathFacts) -> Check:
    name, details = "home directory", _path_details(home)
    where = home.path + (f" (a symlink to {home.link_target})" if home.link_target else "")
    if home.error is not None:
        return Check(name, Status.PROBLEM, f"{where} cannot be inspected ({home.error})",
                     "check the permissions of the folders above it", details)
    if home.kind is PathKind.MISSING:
        if home.link_target is not None:
            return Check(name, Status.PROBLEM, f"{where} points to nothing",
                         f"create the folder it points to (mkdir -m 700 {home.link_target}) or remove the link "
                         f"(rm {home.path})", details)
        return Check(name, Status.OK, f"{where} does not exist yet; the first login creates it (0700)", details=details)
    if home.kind is not PathKind.DIRECTORY:
        return Check(name, Status.PROBLEM, f"{where} is not a directory",
                     f"move it away (mv {home.path} {home.path}.old)", details)
    findings = _owner_findings(home, "it", recursive=True)
    if home.writable is False:
        findings.append((Status.PROBLEM, f"{where} is not writable by you: logins and refreshes cannot store tokens",
                         f"chmod u+rwx {home.path}"))
    if home.mode is not None and home.mode & 0o077:
        fix = ("set SPEC_KITTY_HOME to a folder of your own" if home.sticky
               else f"chmod go-rwx {home.path} (kitty-auth also does this at the next login or refresh)")
        findings.append((Status.WARNING, f"{where} is open to other users ({_mode(home.mode)})", fix))
    mode = f", {_mode(home.mode)}" if home.mode is not None else ""
    findings.append((Status.OK, f"{where}: a directory{mode}{', yours' if home.mine else ''}", None))
    return _merge(name, findings, details)


def judge_credentials_file(facts: CredentialsFacts) -> Check:
    name, file = "credentials file", facts.file
    details = _path_details(file) | {"sessions": len(facts.sessions)}
    if file.error is not None:
        return Check(name, Status.PROBLEM, f"{file.path} cannot be inspected ({file.error})",
                     "check the permissions of the home directory", details)
    if file.kind is PathKind.MISSING:
        return Check(name, Status.OK, f"{file.path} does not exist (no session is stored here)", details=details)
    if file.kind is PathKind.SYMLINK:
        return Check(name, Status.PROBLEM,
                     f"{file.path} is a symbolic link (to {file.link_target}); kitty-auth never reads or writes "
                     "through one, so every command refuses it",
                     f"rm {file.path} (this removes only the link; chmod would change its target), then {LOGIN}",
                     details)
    if file.kind is not PathKind.FILE:
        return Check(name, Status.PROBLEM, f"{file.path} is not a regular file",
                     f"move it away (mv {file.path} {file.path}.old), then {LOGIN}", details)
    findings = _owner_findings(file, "it")
    if file.mode is not None and file.mode & 0o077:
        findings.append((Status.PROBLEM, f"{file.path} can be read by other users ({_mode(file.mode)}): "
                                         "they could use your tokens",
                         f"chmod 600 {file.path}; if someone may have read it, log in again ({LOGIN} --force)"))
    if facts.read_error is not None:
        findings.append((Status.PROBLEM, f"{file.path} cannot be read ({facts.read_error})",
                         f"chmod u+rw {file.path}"))
    elif facts.parse_error is not None:
        findings.append((Status.PROBLEM, f"{file.path} is not a credentials file ({facts.parse_error})",
                         f"{LOGIN} (it keeps the old file aside as {file.path}.unparsable.N and starts a new one)"))
    else:
        n = len(facts.sessions)
        stored = f"{n} stored session{'s' if n != 1 else ''}" if n else "no session in it"
        mode = f"{_mode(file.mode)}, " if file.mode is not None else ""
        findings.append((Status.OK, f"{file.path}: {mode}{'yours, ' if file.mine else ''}{stored}", None))
    return _merge(name, findings, details)


def judge_leftovers(facts: CredentialsFacts) -> Check:
    name = "leftover files"
    details = {"temporary_files": list(facts.temporary_files), "kept_aside": list(facts.kept_aside)}
    findings: list[tuple[Status, str, str | None]] = []
    if facts.temporary_files:
        n = len(facts.temporary_files)
        findings.append((Status.WARNING,
                         f"{n} temporary file{'s' if n != 1 else ''} of a save that was interrupted: "
                         + ", ".join(facts.temporary_files),
                         "none needed: the next login or refresh deletes them (or: rm "
                         + " ".join(facts.temporary_files) + ")"))
    if facts.kept_aside:
        n = len(facts.kept_aside)
        findings.append((Status.WARNING,
                         f"{n} credentials file{'s' if n != 1 else ''} that could not be parsed, kept aside: "
                         + ", ".join(facts.kept_aside),
                         "look at them (another program's data may be in them), then delete them: rm "
                         + " ".join(facts.kept_aside)))
    if not findings:
        return Check(name, Status.OK, "none", details=details)
    return _merge(name, findings, details)


def judge_config(config: ConfigFacts) -> Check:
    name = "config.toml"
    details = {"path": config.path, "server_url": config.configured_url}
    if not config.exists:
        return Check(name, Status.OK, f"{config.path} does not exist (it is optional)", details=details)
    if config.error is not None:
        fix = f"fix or remove {config.path}"
        if config.env_url is not None:
            return Check(name, Status.WARNING, f"{config.path} cannot be read ({config.error}); it is ignored "
                                               "while SPEC_KITTY_SAAS_URL is set", fix, details)
        return Check(name, Status.PROBLEM, f"{config.path} cannot be read ({config.error}); login cannot "
                                           "choose a server until it is fixed", fix, details)
    if config.configured_url is None:
        return Check(name, Status.OK, f"{config.path}: valid; it names no server ([sync] server_url)", details=details)
    over = " (SPEC_KITTY_SAAS_URL overrides it)" if config.env_url is not None else ""
    return Check(name, Status.OK, f"{config.path}: valid; [sync] server_url = {config.configured_url}{over}", details=details)


def judge_server_url(config: ConfigFacts) -> Check:
    name = "server URL"
    details = {"server_url": config.login_server, "source": config.login_server_source}
    if config.login_server_error is not None:
        if config.error is not None and config.env_url is None:
            fix = f"fix or remove {config.path}"
        else:
            fix = f"give an https:// URL in {config.login_server_source or 'SPEC_KITTY_SAAS_URL or config.toml'}"
        return Check(name, Status.PROBLEM, f"login cannot choose a server: {config.login_server_error}", fix, details)
    return Check(name, Status.OK, f"`login` goes to {config.login_server} (from {config.login_server_source})",
                 details=details)


def judge_lock(lock: LockFacts) -> Check:
    name, file = "lock", lock.file
    details = _path_details(file) | {"held": lock.held, "holder_pid": lock.holder_pid,
                                     "recorded_pid": lock.recorded_pid, "recorded_alive": lock.recorded_alive}
    if file.error is not None:
        return Check(name, Status.PROBLEM, f"{file.path} cannot be inspected ({file.error})",
                     "check the permissions of the home directory", details)
    if file.kind is PathKind.SYMLINK:
        return Check(name, Status.PROBLEM, f"{file.path} is a symbolic link (to {file.link_target}); every login, "
                                           "refresh and logout refuses it",
                     f"rm {file.path} (this removes only the link)", details)
    if file.kind is PathKind.MISSING:
        return Check(name, Status.OK, f"{file.path}: free (not created yet)", details=details)
    if file.kind is not PathKind.FILE:
        return Check(name, Status.PROBLEM, f"{file.path} is not a regular file", f"rm {file.path}", details)
    if lock.held is None:
        return Check(name, Status.SKIPPED, f"{file.path}: whether it is held cannot be told here", details=details)
    if not lock.held:
        note = ""
        if lock.recorded_pid is not None and lock.recorded_alive is False:
            note = (f" (it names process {lock.recorded_pid}, which is no longer running: that process ended while "
                    "holding it, and the system released the lock)")
        return Check(name, Status.OK, f"{file.path}: free{note}", details=details)
    if lock.holder_pid is not None:
        return Check(name, Status.WARNING,
                     f"{file.path} is held by process {lock.holder_pid}: logins, refreshes and logouts wait "
                     "for it (normal while that process refreshes or logs in)",
                     f"if it stays held, see what process {lock.holder_pid} is (ps -p {lock.holder_pid}) "
                     f"and end it if it is stuck (kill {lock.holder_pid})", details)
    dead = (f"; the PID written in it, {lock.recorded_pid}, is not running" if lock.recorded_pid is not None
            and lock.recorded_alive is False else "")
    return Check(name, Status.WARNING,
                 f"{file.path} is held by a process that could not be identified{dead}: logins, refreshes "
                 "and logouts wait for it",
                 f"find it with `fuser {file.path}` or `lsof {file.path}`", details)


def _source_findings(source: CertificateSource | None, *, os_verifier: bool) -> list[tuple[Status, str, str | None]]:
    if source is None:
        return []
    v, path = source.variable, source.path
    if source.kind is PathKind.MISSING:
        return [(Status.WARNING, f"{v} names {path}, which does not exist: it is ignored",
                 f"unset {v}, or point it to your CA {'bundle' if v == 'SSL_CERT_FILE' else 'directory'}")]
    wanted = PathKind.FILE if v == "SSL_CERT_FILE" else PathKind.DIRECTORY
    if source.kind is not wanted:
        return [(Status.WARNING, f"{v} names {path}, which is not a {'file' if wanted is PathKind.FILE else 'directory'}:"
                                 " it is ignored", f"unset {v}, or point it to a PEM "
                                                   f"{'file' if wanted is PathKind.FILE else 'directory'}")]
    if not source.readable or source.error is not None:
        why = "cannot be read" if not source.readable else f"does not load ({source.error})"
        return [(Status.PROBLEM, f"{v} {path} {why}: every HTTPS connection fails",
                 f"point {v} to a readable PEM file of CA certificates, or unset it")]
    if v == "SSL_CERT_DIR":
        if os_verifier:
            return [(Status.WARNING, f"SSL_CERT_DIR {path} is not read on this system", "use SSL_CERT_FILE instead")]
        if not source.certificates:
            return [(Status.WARNING, f"SSL_CERT_DIR {path} has no certificate under a hashed name (how OpenSSL "
                                     "finds them): it adds nothing", f"openssl rehash {path}")]
        return [(Status.OK, f"SSL_CERT_DIR {path} ({source.certificates} hashed certificate names)", None)]
    n, ca = source.certificates or 0, source.ca_certificates or 0
    found = f"SSL_CERT_FILE {path} ({n} certificate{'s' if n != 1 else ''})"
    if ca < n:
        return [(Status.WARNING, f"{found}: {n - ca} of them {'is' if n - ca == 1 else 'are'} not a CA certificate "
                                 "(a server's own certificate?) and trust nothing",
                 "put the CA certificate that signs the server's certificate in it")]
    return [(Status.OK, found, None)]


def judge_trust(trust: TrustFacts) -> Check:
    name = "TLS trust"
    details: dict[str, Any] = {
        "truststore": trust.truststore, "system_bundle": trust.system_bundle,
        "system_certificates": trust.system_certificates,
        "ssl_cert_file": None if trust.cert_file is None else trust.cert_file.path,
        "ssl_cert_file_certificates": None if trust.cert_file is None else trust.cert_file.certificates,
        "ssl_cert_dir": None if trust.cert_dir is None else trust.cert_dir.path,
    }
    store = "the OS trust store (truststore)" if trust.truststore else "OpenSSL's default CA paths"
    findings: list[tuple[Status, str, str | None]] = []
    if trust.os_verifier:
        findings.append((Status.OK, f"{store}: the system verifies certificates", None))
    elif trust.system_certificates:
        bundle = f" {trust.system_bundle}" if trust.system_bundle else ""
        findings.append((Status.OK, f"{store}:{bundle} ({trust.system_certificates} CA certificates)", None))
    elif trust.cert_file is None or trust.cert_file.kind is not PathKind.FILE:
        findings.append((Status.PROBLEM, f"{store}: no CA certificates found: HTTPS connections cannot be verified",
                         "install your system's CA certificates (e.g. the ca-certificates package), or set "
                         "SSL_CERT_FILE to a PEM bundle"))
    findings += _source_findings(trust.cert_file, os_verifier=trust.os_verifier)
    findings += _source_findings(trust.cert_dir, os_verifier=trust.os_verifier)
    if trust.context_error is not None and not any(s is Status.PROBLEM for s, _, _ in findings):
        findings.append((Status.PROBLEM, trust.context_error, "fix or unset SSL_CERT_FILE and SSL_CERT_DIR"))
    return _merge(name, findings, details)


_KINDS = {
    LoginMethod.WEB: "an OAuth server: `login` signs in in the browser",
    LoginMethod.DEVICE: "an OAuth server: `login` signs in with a device code",
    LoginMethod.PASSWORD: "a password server (no OAuth metadata): `login` asks for a username and password",
}


def _unreached_fix(error: AuthError | None) -> str:
    if isinstance(error, TLSVerificationError):
        return ("if your network inspects HTTPS with its own CA, set SSL_CERT_FILE to that CA's PEM file; "
                "otherwise check the server URL")
    if isinstance(error, InvalidServerUrlError):
        return "correct the server URL"
    if isinstance(error, NetworkError):
        return "check your connection, your proxy settings (HTTPS_PROXY) and the server URL"
    return "check the server URL; if it is right, the server is not working: try again later"


def judge_server(server: ServerFacts, roles: Sequence[str]) -> Check:
    name = "server"
    who = f"{server.url} ({', '.join(roles)})" if roles else server.url
    details: dict[str, Any] = {
        "url": server.url, "roles": list(roles), "reached": server.reached, "rtt_ms": server.rtt_ms,
        "http_status": server.status,
        "kind": None if server.login_method is None
        else ("password" if server.login_method is LoginMethod.PASSWORD else "oauth"),
        "login_method": None if server.login_method is None else server.login_method.value,
    }
    if not server.reached:
        error = str(server.error) if server.error is not None else "no answer"
        return Check(name, Status.PROBLEM, f"{who} cannot be reached over HTTPS: {error}",
                     _unreached_fix(server.error), details)
    reached = f"{who}: reached over HTTPS in {server.rtt_ms} ms"
    findings: list[tuple[Status, str, str | None]] = []
    if server.kind_error is not None:
        findings.append((Status.PROBLEM, f"{reached}, but `login` would fail there: {server.kind_error}",
                         _unreached_fix(server.kind_error)))
    else:
        assert server.login_method is not None
        findings.append((Status.OK, f"{reached}; {_KINDS[server.login_method]}", None))
    if server.rtt_ms is not None and server.rtt_ms > SLOW_ANSWER_MS:
        findings.append((Status.WARNING, f"{reached}: slow (requests give up after a few seconds)",
                         "check your connection and proxy settings (HTTPS_PROXY)"))
    return _merge(name, findings, details)


def _amount(seconds: int) -> str:
    seconds = abs(seconds)  # to the nearest unit: the Date header has whole seconds, the probe takes some
    if seconds >= 7200:
        return f"{round(seconds / 3600)} hours"
    if seconds >= 120:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def judge_clock(server: ServerFacts) -> Check:
    name = "clock"
    skew = server.skew_seconds
    details = {"url": server.url, "skew_s": skew}
    if skew is None:
        return Check(name, Status.SKIPPED, f"{server.url} sent no usable Date header: clock skew unknown",
                     details=details)
    if abs(skew) <= SKEW_WARNING_SECONDS:
        return Check(name, Status.OK, f"this machine's clock is within {_amount(skew) if skew else '1 second'} of "
                                      f"{server.url}'s", details=details)
    way = "behind" if skew > 0 else "ahead of"
    return Check(name, Status.WARNING,
                 f"this machine's clock is {_amount(skew)} {way} {server.url}'s. kitty-auth measures token expiries "
                 "on this machine's clock, so refreshing still works, but other tools may fail (TLS certificate "
                 "checks, signed links, other clients' token checks)",
                 "set the clock right: turn on network time (e.g. `timedatectl set-ntp true`, or your system's "
                 "date and time settings)", details)


def _expiry(label: str, when: datetime | None, now: datetime, *, refreshable: bool = False) -> str:
    if when is None:
        return f"{label} has no expiry (valid until the server refuses it)"
    if when > now:
        return f"{label} valid until {format_instant(when)}"
    after = " (refreshed at the next use)" if refreshable else ""
    return f"{label} expired at {format_instant(when)}{after}"


def _session_details(session: StoredSession, now: datetime) -> dict[str, Any]:
    creds = session.credentials
    tokens = creds.tokens
    return {
        "username": creds.username, "server_url": creds.server_url, "login_method": creds.login_method.value,
        "active": session.active, "team_slug": creds.team_slug, "session_id": creds.session_id,
        "access_expires_at": format_instant(tokens.access_expires_at),
        "refresh_expires_at": None if tokens.refresh_expires_at is None else format_instant(tokens.refresh_expires_at),
        "access_expired": tokens.access_expires_at <= now, "logged_in": creds.is_authenticated(now),
    }


def judge_sessions(credentials: CredentialsFacts, now: datetime, token_in_env: bool) -> Check:
    name = "sessions"
    sessions = credentials.sessions
    details: dict[str, Any] = {"sessions": [_session_details(s, now) for s in sessions]}
    if not credentials.usable:
        return Check(name, Status.SKIPPED, "the credentials file cannot be read (see above)", details=details)
    if not sessions:
        if token_in_env:
            return Check(name, Status.OK, f"none stored; commands use {TOKEN_VARIABLE}", details=details)
        return Check(name, Status.PROBLEM, "not logged in: no session is stored", LOGIN, details)
    findings: list[tuple[Status, str, str | None]] = []
    for session in sessions:
        creds = session.credentials
        alive = creds.is_authenticated(now)
        tokens = creds.tokens
        line = (f"{session.label} ({'active, ' if session.active else ''}{creds.login_method.value}): "
                f"{_expiry('access token', tokens.access_expires_at, now, refreshable=alive)}, "
                f"{_expiry('refresh token', tokens.refresh_expires_at, now)}")
        if alive:
            findings.append((Status.OK, line, None))
        elif session.active:
            findings.append((Status.PROBLEM, f"{line}: the session has expired",
                             f"{LOGIN} --server {creds.server_url}"))
        else:
            findings.append((Status.WARNING, f"{line}: this stored session has expired",
                             f"spec-kitty auth switch --server {creds.server_url} --user {creds.username}, "
                             f"then {LOGIN} (or spec-kitty auth logout to remove it)"))
    if not any(s.active for s in sessions):
        findings.append((Status.WARNING, "none of the stored sessions is the active one",
                         "spec-kitty auth switch"))
    check = _merge(name, findings, details)
    if check.status is Status.OK:  # every session is listed, not only the ones with something to fix
        return Check(name, Status.OK, "\n".join(text for _, text, _ in findings), None, details)
    return check


def judge_token_variable(token_in_env: bool, stored: int) -> Check:
    name, details = TOKEN_VARIABLE, {"set": token_in_env}
    if not token_in_env:
        return Check(name, Status.OK, "not set: commands use the active stored session", details=details)
    if stored:
        return Check(name, Status.WARNING,
                     f"set: every command uses it instead of the {stored} stored session{'s' if stored != 1 else ''}"
                     " (it is never refreshed; its value is not shown)",
                     f"unset {TOKEN_VARIABLE} to use the stored sessions", details)
    return Check(name, Status.OK, "set: every command uses it (it is never refreshed: when it expires, set a new "
                                  "one; its value is not shown)", details=details)


def judge_session_proof(proof: SessionProof | None, token_in_env: bool) -> Check:
    name = "session check"
    if proof is None:
        return Check(name, Status.SKIPPED, "not run: --check-session refreshes the active session if needed and "
                                           "asks the server to accept it (it sends the token)")
    creds = proof.credentials
    details: dict[str, Any] = {
        "endpoint": proof.endpoint, "refreshed": proof.refreshed,
        "server_url": None if creds is None else creds.server_url,
        "username": None if creds is None else creds.username,
    }
    env = (f" ({TOKEN_VARIABLE} is set: commands use it instead, and it was not checked)" if token_in_env else "")
    error = proof.error
    if error is None:
        assert creds is not None
        how = "after refreshing its access token" if proof.refreshed else "its access token was still valid"
        who = f"; the server names {proof.identity.email}" if proof.identity is not None else ""
        return Check(name, Status.OK, f"{proof.endpoint} at {creds.server_url} accepted the session of "
                                      f"{creds.username} ({how}){who}{env}", details=details)
    if isinstance(error, NotAuthenticatedError):
        return Check(name, Status.PROBLEM, f"no active session to check{env}", LOGIN, details)
    if isinstance(error, SessionExpiredError):
        return Check(name, Status.PROBLEM, "the server refused the refresh token: the session has ended",
                     LOGIN, details)
    if isinstance(error, TokenRejectedError):
        return Check(name, Status.PROBLEM, f"{proof.endpoint} refused the access token", f"{LOGIN} --force", details)
    if isinstance(error, CredentialsLockTimeoutError):
        return Check(name, Status.PROBLEM, str(error), "wait for that process to finish (or end it), then run again",
                     details)
    if isinstance(error, NetworkError | TLSVerificationError | InvalidServerUrlError):
        return Check(name, Status.PROBLEM, str(error), _unreached_fix(error), details)
    return Check(name, Status.PROBLEM, str(error), f"if it persists, {LOGIN} --force", details)


# ------------------------------------------------------------------------------ use cases


class CheckSession:
    """`--check-session`: refresh the active session if needed (``EnsureFreshToken``: single-flight, as any
    command) and prove the server accepts it: ``me`` for OAuth sessions, a ws-token for password ones."""

    def __init__(self, repo: SessionStore, ensure_fresh: FreshToken, prover: SessionProver) -> None:
        self._repo, self._ensure, self._prover = repo, ensure_fresh, prover

    def execute(self) -> SessionProof:
        try:
            before = self._repo.load()
            creds = self._ensure.execute()
        except AuthError as exc:
            return SessionProof(None, error=exc)
        refreshed = before is None or before.tokens.access != creds.tokens.access
        oauth = creds.oauth is not None
        endpoint = ME_ENDPOINT if oauth else WS_TOKEN_ENDPOINT
        try:
            if oauth:
                identity: Identity | None = self._prover.me(creds.server_url, creds.tokens.access)
            else:
                self._prover.ws_token(creds.server_url, creds.tokens.access)
                identity = None
        except AuthError as exc:
            return SessionProof(creds, refreshed, endpoint, error=exc)
        return SessionProof(creds, refreshed, endpoint, identity)


def servers_to_probe(config: ConfigFacts, sessions: Sequence[StoredSession]) -> list[tuple[str, list[str]]]:
    """Each server worth reaching, once, with why: where `login` goes, and each stored session's server."""
    found: list[tuple[str, list[str]]] = []

    def add(url: str, role: str) -> None:
        for known, roles in found:
            if same_server(known, url):
                roles.append(role)
                return
        found.append((url, [role]))

    if config.login_server is not None:
        add(config.login_server, "where `login` goes")
    for session in sessions:
        add(session.credentials.server_url, f"{'active ' if session.active else ''}session of "
                                            f"{session.credentials.username}")
    return found


class Doctor:
    """Gathers the facts through the ports and judges them, in the order the report shows them."""

    def __init__(self, facts: DoctorFacts, probe: ServerProbe, clock: Clock,
                 check_session: CheckSession | None = None) -> None:
        self._facts, self._probe, self._clock, self._check_session = facts, probe, clock, check_session

    def execute(self, *, offline: bool = False, check_session: bool = False) -> DoctorReport:
        local = self._facts.local()
        creds = local.credentials
        checks = [
            judge_home(local.home),
            judge_credentials_file(creds),
            judge_leftovers(creds),
            judge_config(local.config),
            judge_server_url(local.config),
            judge_lock(local.lock),
            judge_trust(local.trust),
        ]
        targets = servers_to_probe(local.config, creds.sessions)
        if offline:
            checks.append(Check("server", Status.SKIPPED, "not contacted (--offline)"))
        elif not targets:
            checks.append(Check("server", Status.SKIPPED, "no server to contact (see the server URL above)"))
        else:
            answers = self._probe.probe([url for url, _ in targets])
            checks += [judge_server(answer, roles) for answer, (_, roles) in zip(answers, targets, strict=True)]
            checks += [judge_clock(answer) for answer in answers if answer.reached]
        checks.append(judge_sessions(creds, self._clock.now(), local.token_in_env))
        checks.append(judge_token_variable(local.token_in_env, len(creds.sessions)))
        proof = None
        if check_session and self._check_session is not None:
            proof = self._check_session.execute()
        checks.append(judge_session_proof(proof, local.token_in_env))
        return DoctorReport(tuple(checks))
