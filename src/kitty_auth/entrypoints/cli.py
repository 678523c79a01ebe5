"""The Click `auth` group (login, logout, status) and the standalone `kitty-auth` console script.

Thin by design: parse options, call a use case, render. Every command body runs inside `_run`,
the one place that turns errors into one sentence on stderr with exit code 1, Ctrl-C into
`Aborted.` on a line of its own with exit code 130, and SIGTERM into `Terminated.` with exit code
143. SIGTERM is turned into `Terminated`, a KeyboardInterrupt, so that it takes the path Ctrl-C
takes: a refresh the server may have carried out is awaited and stored, and an interrupted login
stores or revokes the session it was issued, before the process exits. The pieces a new command reuses:
`_container` (one container per invocation), `_prompt` (a typed line; Enter alone is an empty
answer, never a silent re-ask), `_waiting` (says whom we wait for when a request is slow: the
server, or another process holding the credentials lock),
`_warn`, and `_auth_command` (how the user runs this group, for hints).

Mounted in a host (``host.add_command(auth)``) the group leaves the host's logging alone and its
hints name the host's command (`spec-kitty auth login`); standalone it runs as `kitty-auth`
(a name of its own, so installing kitty-auth never replaces spec-kitty's `spec-kitty`) or
`python -m kitty_auth`, and owns the process's logging. Its SIGTERM handler is installed by
`main()` for the whole process; mounted, only while one of our commands runs, and only when the
host left SIGTERM at its default (which would kill the process mid-save): a host that handles
SIGTERM itself keeps its handler.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn, TypeVar
from urllib.parse import urlsplit

import click

from kitty_auth.container import OfflineContainer, configure_logging, is_container, login_server
from kitty_auth.domain.errors import AuthError, InvalidInputError
from kitty_auth.domain.interrupts import interrupted_login
from kitty_auth.domain.model import (
    Credentials,
    LoginMethod,
    StatusReport,
    format_instant,
)
from kitty_auth.domain.use_cases import check_password, check_username

if TYPE_CHECKING:
    from kitty_auth.container import Container

T = TypeVar("T")
log = logging.getLogger("kitty_auth.cli")

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
WAIT_NOTICE_AFTER = 1.0  # seconds without an answer before saying which server we are waiting for
# The command our domain's sentences name; replaced by the one the user actually runs (`_localised`).
HOST_AUTH_COMMAND = "spec-kitty auth"
_CONTAINER_KEY = "kitty_auth.container"

_owns_process = False  # set by main(): our console script / `python -m kitty_auth`, not a host CLI
_line_open = False  # a prompt is on stderr without its newline yet


# ------------------------------------------------------------------------------ shared machinery


def _is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _auth_command(ctx: click.Context | None = None) -> str:
    """How the user runs this group: `kitty-auth auth`, `python -m kitty_auth auth`, `spec-kitty auth`."""
    ctx = ctx or click.get_current_context(silent=True)
    node = ctx
    while node is not None and node.command is not auth:
        node = node.parent
    return node.command_path if node is not None else HOST_AUTH_COMMAND


def _localised(message: str) -> str:
    """``message`` with the commands it suggests spelled as the user runs them."""
    return message.replace(HOST_AUTH_COMMAND + " ", _auth_command() + " ")


def _echo_err(text: str) -> None:
    global _line_open
    if _line_open:  # a prompt left the line open (end of input): start a fresh one
        click.echo(err=True)
        _line_open = False
    click.echo(text, err=True)


def _warn(text: str) -> None:
    _echo_err(f"Warning: {_localised(text)}")


def _fail(message: str, code: int = 1) -> NoReturn:
    _echo_err(f"Error: {_localised(message)}")
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLI's handler: handled as Ctrl-C is, then exit 143."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated while the block runs, unless someone else handles SIGTERM.

    Installed only from the main thread (Python's rule), and only over the default disposition
    (which kills the process at once, mid-refresh or mid-save) or our own; a host's handler, or
    SIG_IGN, is left as it is. The previous disposition is restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, _on_sigterm):
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(interrupt: BaseException | None = None) -> NoReturn:
    """Ctrl-C: `Aborted.` on a line of its own, exit 130, from a prompt, a request or a lock wait alike.

    SIGTERM (``Terminated``): `Terminated.`, exit 143. A login interrupted after the server issued
    its session says first what became of it (stored or revoked).
    """
    global _line_open
    # A terminal echoed ^C after whatever was on the line (or a prompt is still open): new line first.
    if _line_open or _is_tty(sys.stderr):
        click.echo(err=True)
    _line_open = False
    login = interrupted_login(interrupt) if interrupt is not None else None
    if login is not None:
        click.echo(_localised(login.sentence()), err=True)
    terminated = isinstance(interrupt, Terminated)
    click.echo("Terminated." if terminated else "Aborted.", err=True)
    sys.exit(143 if terminated else 130)


def _run(action: Callable[[], T], *, on_error: Callable[[], None] | None = None) -> T:
    """Run ``action``; every error becomes one sentence on stderr and exit 1, Ctrl-C exit 130, SIGTERM 143.

    ``on_error`` runs first when a domain error ends the command (``status --json`` still prints
    its object on stdout).
    """
    try:
        with _sigterm_as_interrupt():
            return action()
    except AuthError as exc:
        log.debug("%s raised", type(exc).__name__)
        if on_error is not None:
            on_error()
        _fail(str(exc))
    except (KeyboardInterrupt, click.Abort) as exc:  # Abort: Click's own prompts turn Ctrl-C into it
        _interrupted(exc)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as exc:  # a bug: say so in one line; the frames (no values) only at DEBUG
        log.debug("unexpected %s:\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
        _fail(f"Unexpected internal error ({type(exc).__name__}); rerun with SPEC_KITTY_LOG_LEVEL=DEBUG for details.")


def _offline(ctx: click.Context) -> OfflineContainer | Container:
    """The container of the commands that read the file (status, whoami, switch, token): one per invocation.

    Built without dependency-injector (``OfflineContainer``), which `_container` adds when a
    command needs it; a host CLI or a test may pass its own container (``obj=container``).
    """
    root = ctx.find_root()
    if is_container(root.obj):  # a host CLI or a test passed its own (obj=container)
        return root.obj  # type: ignore[no-any-return]
    if _CONTAINER_KEY not in root.meta:
        container = OfflineContainer()
        settings = container.settings()
        configure_logging(settings, owns_process=_owns_process)
        for warning in settings.warnings:
            _warn(warning)
        root.meta[_CONTAINER_KEY] = container
    return root.meta[_CONTAINER_KEY]  # type: ignore[no-any-return]


def _container(ctx: click.Context) -> Container:
    """The full container, one per invocation, shared by the group's commands (see `_offline`)."""
    container = _offline(ctx)
    return container.full() if isinstance(container, OfflineContainer) else container


def _warn_unreadable_config(container: Container) -> None:
    """Commands that do not need config.toml go on without it, after one warning."""
    error = container.settings().config_error
    if error is not None:
        _warn(error.warning)


def _prompt(label: str, *, hidden: bool = False) -> str:
    """One line the user types after ``label: `` on stderr.

    Enter alone, or the end of input, is an empty answer (the caller says why it cannot be
    used); Ctrl-C propagates as KeyboardInterrupt. Click's prompt functions are used so that
    Click's test runner can feed them; hidden input is read through getpass (not echoed).
    """
    global _line_open
    _line_open = True
    try:
        if hidden:
            # getpass writes the prompt itself once echo is off; a prompt shown earlier would let a
            # fast typist's password be echoed, then flushed (TCSAFLUSH) while getpass sets up.
            value = click.termui.hidden_prompt_func(f"{label}: ")
        else:
            click.echo(f"{label}: ", nl=False, err=True)
            value = click.termui.visible_prompt_func("")
    except EOFError:
        return ""  # the line stays open: the next message starts a fresh one
    if not hidden and not _is_tty(sys.stdin):
        click.echo(err=True)  # piped input is not echoed: end the prompt's line ourselves
    _line_open = False  # (a terminal echoed the Enter; getpass writes its own newline)
    return value


@contextmanager
def _waiting(server_url: str, repository: object | None = None) -> Iterator[None]:
    """While a request runs: after a second without an answer, say on stderr (a terminal) whom we wait for.

    A wait for the credentials lock (another spec-kitty process refreshing or logging in) is said as
    such, naming that process, not blamed on the server; once the lock is ours the server gets its
    own second before it is named.
    """
    if not _is_tty(sys.stderr):
        yield
        return
    import threading
    import time

    lock_wait = getattr(repository, "lock_wait", lambda: None)
    done = threading.Event()

    def watch() -> None:
        said: set[bool] = set()
        state, since = False, time.monotonic()
        while not done.wait(0.05):
            holder = lock_wait()
            if (holder is not None) != state:
                state, since = holder is not None, time.monotonic()
            if state not in said and time.monotonic() - since >= WAIT_NOTICE_AFTER:
                said.add(state)
                by = f" ({holder})" if holder else ""
                _echo_err(f"Waiting for another spec-kitty process{by} to release the credentials lock "
                          f"{getattr(repository, 'lock_path', '')}…" if state
                          else f"Contacting {urlsplit(server_url).netloc}…")

    watcher = threading.Thread(target=watch, name="kitty-auth-wait-notice", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(1.0)  # nothing is printed after the command's own outcome


# ------------------------------------------------------------------------------ the auth group


@click.group(name="auth", context_settings=HELP_OPTIONS)
def auth() -> None:
    """Log in to spec-kitty, log out, show and switch the stored sessions, and diagnose problems."""


def _login_target(container: Container, server: str | None) -> str:
    """`--server`, else `$SPEC_KITTY_SAAS_URL` / config.toml, else the stored session's server, else the default."""
    settings = container.settings()
    if server is not None and settings.config_error is not None:
        _warn(settings.config_error.warning)  # --server does not need config.toml: say so, go on
    return login_server(container, server)  # the library's AuthClient picks it the same way


def _read_password_stdin() -> str:
    # The bytes, as UTF-8: Windows decodes a piped stdin with its ANSI code page (cp1252...), which
    # turns a UTF-8 password into another one. Bytes that are not UTF-8 keep the stream's encoding.
    raw = getattr(sys.stdin, "buffer", None)
    data = raw.readline() if raw is not None else sys.stdin.readline()
    if not data:
        raise InvalidInputError("No password on standard input (--password-stdin reads its first line).")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            data = data.decode(sys.stdin.encoding or "utf-8", errors="replace")
    return check_password(data.rstrip("\r\n"))


@auth.command()
@click.option("--server", metavar="URL", help="Server to log in to (https:// is implied; http:// is refused).")
@click.option("--username", "-u", metavar="NAME", help="Username; prompted for when not given.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (needs --username).")
@click.option("--web", is_flag=True, help="Log in in the web browser (OAuth: authorization code + PKCE).")
@click.option("--device", "--headless", "device", is_flag=True,
              help="Log in with a code shown here and approved in a browser on any device (OAuth device flow).")
@click.option("--machine", is_flag=True,
              # Spelled out: importing domain/machine.py for its names would cost every `status` start-up.
              help="Log in as a CI service principal (OAuth client credentials) from SPEC_KITTY_MACHINE_CLIENT_ID "
                   "and SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE or SPEC_KITTY_MACHINE_CLIENT_SECRET.")
@click.option("--force", "-f", is_flag=True, help="Log in again even when already logged in.")
@click.pass_context
def login(ctx: click.Context, server: str | None, username: str | None, password_stdin: bool, web: bool,
          device: bool, machine: bool, force: bool) -> None:
    """Log in and store the session's tokens (never the password).

    Without --server: the server of SPEC_KITTY_SAAS_URL or config.toml, else the one you are
    logged in to, else the default. Without a method flag the server decides: an OAuth server
    gets the browser (the device flow when no browser can be opened), a password server the
    Username and Password prompts. --machine takes the client id and secret from the
    environment only (never a prompt or an argument).
    """
    if machine and (username is not None or password_stdin or web or device):
        raise click.UsageError("--machine logs in with the client credentials from the environment; "
                               "drop --username/--password-stdin/--web/--device.")
    if password_stdin and username is None:
        raise click.UsageError("--password-stdin requires --username.")
    if web and device:
        raise click.UsageError("--web and --device are two different login methods; choose one.")
    if (web or device) and (username is not None or password_stdin):
        raise click.UsageError("--web and --device log in without a password; drop --username/--password-stdin.")

    def run() -> None:
        container = _container(ctx)
        _note_environment_token(container, "login")
        target = _login_target(container, server)
        if machine:
            _machine_login(container, target, force)
            return
        use_case = container.login()
        # Reading the stored session also proves the credentials path is usable (no symlink,
        # home not a file, file readable) before any prompt or request, with --force too.
        if force:
            container.status().execute()  # reads it without making a stored session active
            stored = None
        else:
            stored = use_case.already_logged_in(target, username)
        if stored is not None:
            current = stored.credentials
            now = "; that stored session is now the active one" if stored.switched else ""
            click.echo(f"Already logged in as {current.username} at {current.server_url}{now} "
                       "(use --force to log in again).")
            return
        if username is None and not password_stdin:  # the server's kind (or --web/--device) may mean OAuth
            from kitty_auth.entrypoints.oauth_login import TerminalLoginProgress, oauth_login, requested_method

            _echo_err(f"Logging in to {target}.")
            progress = TerminalLoginProgress(_echo_err)
            oauth = oauth_login(container, target, requested_method(web, device), progress)
            if oauth is not None:
                team = f" (team {oauth.team_slug})" if oauth.team_slug else ""
                click.echo(f"Logged in as {oauth.username} at {oauth.server_url}{team}.")
                return
        if username is not None and not password_stdin:  # (without -u the line above said it already)
            _echo_err(f"Logging in to {target}.")  # before the first prompt: whom the password goes to
        name = check_username(username if username is not None else _prompt("Username"))  # before the password
        password = _read_password_stdin() if password_stdin else check_password(_prompt("Password", hidden=True))
        with _waiting(target, container.repository()):  # the login waits for the lock, then sends
            credentials = use_case.execute(target, name, password)
        click.echo(f"Logged in as {credentials.username} at {credentials.server_url}.")

    _run(run)


def _machine_login(container: Container, target: str, force: bool) -> None:
    """`login --machine`: the client credentials grant with the environment's client (never a prompt)."""
    use_case = container.login_with_client_credentials()
    client = use_case.configuration()  # one sentence naming the variables when they are missing
    current = use_case.already_logged_in(target, client.client_id)  # also proves the credentials path usable
    if current is not None and not force:
        click.echo(f"Already logged in as {current.username} (machine client {client.client_id}) at "
                   f"{current.server_url} (use --force to log in again).")
        return
    _echo_err(f"Logging in to {target} as machine client {client.client_id}.")
    with _waiting(target, container.repository()):
        credentials = use_case.execute(target, client)
    team = f" (team {credentials.team_slug})" if credentials.team_slug else ""
    click.echo(f"Logged in as {credentials.username} at {credentials.server_url}{team}.")


@auth.command()
@click.option("--local", is_flag=True, help="Only remove the session here; do not ask the server to revoke it.")
@click.option("--all", "all_", is_flag=True, help="Remove (and revoke) every stored session, not only the active one.")
@click.pass_context
def logout(ctx: click.Context, local: bool, all_: bool) -> None:
    """Remove the active session, then ask the server to revoke it. Not being logged in is fine.

    When other sessions are stored, the most recently used one becomes active.
    """

    def run() -> None:
        container = _container(ctx)
        _warn_unreadable_config(container)
        _note_environment_token(container, "logout")
        use_case = container.logout_command()
        if all_:
            _logout_all(use_case, local)
            return
        # First: offline or not, the session is gone from this machine. A lock another process keeps
        # busy for more than a few seconds ends logout here (exit 1, still logged in, the holder named).
        removed = use_case.remove()
        click.echo("Logged out; stored credentials removed." if removed.removed
                   else "Logged out; no session was stored.")
        if local or removed.session is None:  # nothing to ask the server: no request, no network import
            result = use_case.revoke(removed, skip=local)
        else:
            with _waiting(removed.session.server_url):
                result = use_case.revoke(removed)
        click.echo(result.sentence)  # "The server revoked the session." or why it was not revoked
        if removed.now_active is not None:
            now = removed.now_active
            click.echo(f"Now using {now.username} at {now.server_url}, the most recently used of the "
                       f"other stored sessions (`{_auth_command()} switch` chooses another).")

    _run(run)


def _logout_all(use_case: object, local: bool) -> None:
    removed = use_case.remove_all()  # type: ignore[attr-defined]
    sessions = [r for r in removed if r.removed]
    if not sessions:
        click.echo("Logged out; no session was stored.")
        click.echo(use_case.revoke(removed[0] if removed else _nothing(), skip=local).sentence)  # type: ignore[attr-defined]
        return
    count = len(sessions)
    click.echo(f"Logged out of {count} session{'s' if count != 1 else ''}; stored credentials removed.")
    results = use_case.revoke_each(sessions, skip=local)  # type: ignore[attr-defined]
    for local_logout, result in zip(sessions, results, strict=True):
        who = (f"{local_logout.session.username} at {local_logout.session.server_url}: "
               if local_logout.session is not None else "")
        click.echo(f"  {who}{result.sentence}")


def _nothing() -> object:
    from kitty_auth.domain.revocation import LocalLogout

    return LocalLogout(removed=False)


_METHOD_LABELS = {
    LoginMethod.PASSWORD: "password",
    LoginMethod.WEB: "web browser",
    LoginMethod.DEVICE: "device code",
    LoginMethod.MACHINE: "machine (OAuth client credentials)",
}


def _status_object(report: StatusReport) -> dict[str, object]:
    creds = report.credentials
    if creds is None:
        return {
            "authenticated": False, "username": None, "server_url": None, "access_expires_at": None,
            "refresh_expires_at": None, "login_method": None, "team_slug": None, "session_id": None,
            "machine_client_id": None,
            "token_source": None,
        }  # fmt: skip
    refresh_at = creds.tokens.refresh_expires_at
    return {
        "authenticated": report.authenticated,
        "username": creds.username,
        "server_url": creds.server_url,
        "access_expires_at": format_instant(creds.tokens.access_expires_at),
        "refresh_expires_at": format_instant(refresh_at) if refresh_at is not None else None,
        "login_method": creds.login_method.value,
        "team_slug": creds.team_slug,
        "session_id": creds.session_id,
        "machine_client_id": creds.machine.client_id if creds.machine is not None else None,
        "token_source": "credentials_file",  # or SPEC_KITTY_SAAS_TOKEN's name: _status_from_environment
    }


def _status_json(report: StatusReport) -> str:
    return json.dumps(_status_object(report))


def _relative(when: datetime, now: datetime) -> str:
    seconds = int((when - now).total_seconds())
    past, seconds = seconds < 0, abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            text = f"{n} {unit}{'s' if n != 1 else ''}"
            break
    else:
        text = f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"expired {text} ago" if past else f"expires in {text}"


def _expiry(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "valid until the server refuses it (the server gave no expiry)"
    return f"{_relative(when, now)} ({format_instant(when)})"


def _refresh_expiry(creds: Credentials, now: datetime) -> str:
    if creds.tokens.refresh is None:  # a machine session whose grant gave none: renewed by the grant
        from kitty_auth.domain.machine import SECRET_FILE_VARIABLE, SECRET_VARIABLE

        return f"none; renewed with the client secret from {SECRET_FILE_VARIABLE} or {SECRET_VARIABLE}"
    return _expiry(creds.tokens.refresh_expires_at, now)


def _status_text(creds: Credentials, now: datetime, authenticated: bool) -> str:
    head = (f"Logged in as {creds.username}" if authenticated
            else f"Session expired for {creds.username}; run `{_auth_command()} login`.")
    lines = [
        head,
        f"  Server:         {creds.server_url}",
        f"  Team:           {creds.team_slug or '(none named by the server)'}",
        f"  Login method:   {_METHOD_LABELS.get(creds.login_method, creds.login_method.value)}",
        f"  Access token:   {_expiry(creds.tokens.access_expires_at, now)}",
        f"  Refresh token:  {_refresh_expiry(creds, now)}",
    ]
    if creds.machine is not None:
        lines.insert(4, f"  Machine client: {creds.machine.client_id}")
    identity = creds.identity
    if identity is not None:
        named = identity.name and identity.name != identity.email
        lines.append(f"  Identity:       {f'{identity.name} <{identity.email}>' if named else identity.email}")
        if identity.teams:
            lines.append("  Teams:")
            for team in identity.teams:
                notes = [note for note, on in (("private teamspace", team.is_private_teamspace),
                                               ("current", team.slug == creds.team_slug)) if on]
                name = f" {team.name}" if team.name and team.name != team.slug else ""
                note = " (" + ", ".join(notes) + ")" if notes else ""
                lines.append(f"    - {team.slug}{name}{note}")
    return "\n".join(lines)


@auth.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text (with --all, an array).")
@click.option("--all", "all_", is_flag=True, help="List every stored session, not only the active one.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, all_: bool) -> None:
    """Show the stored session (offline). Exit 0 when logged in, 1 when not.

    With --all, every stored session, the active one first; exit 0 when any of them is logged in.
    With SPEC_KITTY_SAAS_TOKEN set, says that its token is used (exit 0).
    """

    def run() -> bool:
        container = _offline(ctx)
        _warn_unreadable_config(container)
        environment = _token_from_environment(container)
        if all_:
            if environment is not None and not as_json:
                click.echo(_environment_line(*environment) + "\n")
            return _status_all(container, as_json)
        report = container.status().execute()
        if environment is not None:
            _status_from_environment(container, report, *environment, as_json=as_json)
            return True
        if as_json:
            click.echo(_status_json(report))
        elif report.credentials is not None:
            click.echo(_status_text(report.credentials, container.clock().now(), report.authenticated))
            _mention_others(container)
        elif report.unparsable_file is not None:
            click.echo(f"Not logged in: the credentials file {report.unparsable_file} is not valid; "
                       f"`{_auth_command()} login` replaces it.")
        else:
            click.echo(f"Not logged in. Run `{_auth_command()} login`.")
            _mention_others(container)
        return report.authenticated

    def still_print_json() -> None:  # scripts get their object even when the file cannot be used
        if as_json:
            click.echo("[]" if all_ else _status_json(StatusReport(authenticated=False)))

    authenticated = _run(run, on_error=still_print_json)
    ctx.exit(0 if authenticated else 1)


def _token_from_environment(container: OfflineContainer | Container) -> tuple[str, str] | None:
    """(the variable, its server) when SPEC_KITTY_SAAS_TOKEN is set: its token wins over the stored sessions."""
    source = container.token_source()  # a value no header can carry: InvalidEnvironmentTokenError
    if source.environment is None:
        return None
    return source.environment.variable, source.environment_server()


def _environment_line(variable: str, server_url: str) -> str:
    return (f"Using the access token in {variable} for {server_url} (from the environment: "
            "it wins over stored sessions and is never stored or refreshed).")


def _status_from_environment(container: OfflineContainer | Container, report: StatusReport, variable: str,
                             server_url: str, *, as_json: bool) -> None:
    """`status` while SPEC_KITTY_SAAS_TOKEN is set: where the token comes from (its name, never its value),
    then the stored session, which is not used meanwhile."""
    if as_json:
        click.echo(json.dumps({**_status_object(StatusReport(authenticated=False)), "authenticated": True,
                               "server_url": server_url, "token_source": variable}))
        return
    click.echo(_environment_line(variable, server_url))
    if report.credentials is not None:
        click.echo(f"\nThe stored session, not used while {variable} is set:")
        click.echo(_status_text(report.credentials, container.clock().now(), report.authenticated))


def _note_environment_token(container: OfflineContainer | Container, what: str) -> None:
    """login/logout: one line on stderr when SPEC_KITTY_SAAS_TOKEN is set, saying what it means for ``what``."""
    variable = container.settings().environment_token_variable
    if variable is None:
        return
    if what == "login":
        _warn(f"{variable} is set: spec-kitty programs use its token, not the session this login stores, "
              f"until {variable} is unset.")
    else:
        _warn(f"{variable} is set: spec-kitty programs still get an access token from it after this logout.")


def _status_all(container: Container, as_json: bool) -> bool:
    """Every stored session: the active one first, then the others, most recently used first."""
    from kitty_auth.domain.errors import CorruptCredentialsError

    try:
        listed = container.list_sessions().execute()
    except CorruptCredentialsError as exc:
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"Not logged in: the credentials file {exc.path} is not valid; "
                       f"`{_auth_command()} login` replaces it.")
        return False
    if as_json:
        click.echo(json.dumps([{**_status_object(report), "active": stored.active} for stored, report in listed]))
    elif not listed:
        click.echo(f"Not logged in. Run `{_auth_command()} login`.")
    else:
        now = container.clock().now()
        blocks = []
        for stored, report in listed:
            text = _status_text(stored.credentials, now, report.authenticated)
            head, _, rest = text.partition("\n")
            if stored.active:
                head += " (active)"
            elif stored.last_used is not None:
                head += f" (not active; last used {_relative_past(stored.last_used, now)})"
            else:
                head += " (not active)"
            blocks.append(head + ("\n" + rest if rest else ""))
        click.echo("\n\n".join(blocks))
    return any(report.authenticated for _, report in listed)


def _mention_others(container: Container) -> None:
    """After the active session's status: how many others are stored (one line, only if any)."""
    others = sum(1 for stored, _ in container.list_sessions().execute() if not stored.active)
    if others > 0:
        click.echo(f"\n{others} other stored session{'s' if others != 1 else ''}: "
                   f"`{_auth_command()} status --all` lists them, `{_auth_command()} switch` changes the active one.")


def _relative_past(when: datetime, now: datetime) -> str:
    text = _relative(when, now)
    return text.replace("expired ", "").replace("expires in ", "in ")


def _register_more_commands() -> None:
    """The commands kept in modules of their own (each imports only click and our domain)."""
    from kitty_auth.entrypoints import cli_accounts, cli_doctor, cli_token

    auth.add_command(cli_accounts.switch)
    auth.add_command(cli_accounts.whoami)
    auth.add_command(cli_token.token)
    auth.add_command(cli_doctor.doctor)


_register_more_commands()




# ------------------------------------------------------------------------------ standalone


class _StandaloneGroup(click.Group):
    """The console script's root group; `kitty-auth login` points to `kitty-auth auth login`."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name is not None and self.get_command(ctx, name) is None and name in auth.commands:
            raise click.UsageError(f"No such command '{name}'. Did you mean `{ctx.command_path} auth {name}`?", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=_StandaloneGroup, context_settings=HELP_OPTIONS)
@click.version_option(package_name="kitty-auth")
def cli() -> None:
    """kitty-auth: spec-kitty's authentication commands (`auth login`, `auth status`, `auth logout`)."""


cli.add_command(auth)


def main() -> None:
    """The `kitty-auth` console script and `python -m kitty_auth` (Click names the program as it was started)."""
    global _owns_process
    _owns_process = True
    signal.signal(signal.SIGTERM, _on_sigterm)  # the whole process is ours: SIGTERM exits 143 after a clean stop
    try:
        cli.main()
    except KeyboardInterrupt as exc:  # outside a command body (Click's own parsing): the same exit 130 / 143
        _interrupted(exc)
