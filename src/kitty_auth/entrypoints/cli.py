"""The Click `auth` group (login, logout, status) and the `spec-kitty` console script.

Thin by design: parse options, call a use case, render. Domain errors become one sentence on
stderr and exit code 1 in exactly one place, `_run`.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import click

from kitty_auth.container import Container, build_container, configure_logging, is_container
from kitty_auth.domain.errors import AuthError, InvalidInputError
from kitty_auth.domain.model import Credentials, StatusReport, format_instant, normalize_server_url

T = TypeVar("T")
log = logging.getLogger("kitty_auth.cli")


def _container(ctx: click.Context) -> Container:
    """One container per invocation, shared by the group's commands (and by a host CLI)."""
    root = ctx.find_root()
    if is_container(root.obj):  # a host CLI or a test passed its own (obj=container)
        return root.obj  # type: ignore[no-any-return]
    meta = root.meta
    if "kitty_auth.container" not in meta:
        container = build_container()
        configure_logging(_run(lambda: container.settings()).log_level)
        meta["kitty_auth.container"] = container
    return meta["kitty_auth.container"]


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _run(action: Callable[[], T]) -> T:
    """Run ``action``; turn every error into one sentence on stderr and exit 1."""
    try:
        return action()
    except AuthError as exc:
        log.debug("%s raised", type(exc).__name__)
        _fail(str(exc))
    except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line; the frames (no values) only at DEBUG
        log.debug("unexpected %s:\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
        _fail(f"Unexpected internal error ({type(exc).__name__}); rerun with SPEC_KITTY_LOG_LEVEL=DEBUG for details.")
    raise AssertionError("unreachable")


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


def _read_password_stdin() -> str:
    line = sys.stdin.readline()
    if not line:
        raise InvalidInputError("No password on standard input (--password-stdin reads its first line).")
    return line.rstrip("\r\n")


@click.group(name="auth")
def auth() -> None:
    """Log in to spec-kitty, log out, and show the stored session."""


@auth.command()
@click.option("--server", metavar="URL", help="Server to log in to (https:// only).")
@click.option("--username", "-u", metavar="NAME", help="Username; prompted for when not given.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (needs --username).")
@click.option("--force", "-f", is_flag=True, help="Log in again even when already logged in.")
@click.pass_context
def login(ctx: click.Context, server: str | None, username: str | None, password_stdin: bool, force: bool) -> None:
    """Log in and store the session's tokens (never the password)."""
    if password_stdin and username is None:
        raise click.UsageError("--password-stdin requires --username.")
    container = _container(ctx)

    def run() -> None:
        target = normalize_server_url(server or container.settings().server_url)
        use_case = container.login()
        # Reading the stored session also proves the credentials path is usable (no symlink,
        # home not a file, file readable) before any prompt or request, with --force too.
        current = use_case.already_logged_in(target)
        if current is not None and not force:
            click.echo(f"Already logged in as {current.username} at {current.server_url} (use --force to log in again).")
            return
        name = username if username is not None else click.prompt("Username")
        password = _read_password_stdin() if password_stdin else click.prompt("Password", hide_input=True)
        credentials = use_case.execute(target, name, password)
        click.echo(f"Logged in as {credentials.username} at {credentials.server_url}.")

    _run(run)


@auth.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Remove the stored session. Not being logged in is fine."""
    container = _container(ctx)
    removed = _run(lambda: container.logout().execute())
    click.echo("Logged out; stored credentials removed." if removed else "Not logged in; nothing to remove.")


def _status_json(report: StatusReport) -> str:
    creds = report.credentials
    return json.dumps({
        "authenticated": report.authenticated,
        "username": creds.username if creds else None,
        "server_url": creds.server_url if creds else None,
        "access_expires_at": format_instant(creds.tokens.access_expires_at) if creds else None,
        "refresh_expires_at": format_instant(creds.tokens.refresh_expires_at) if creds else None,
    })


def _status_text(creds: Credentials, now: datetime, authenticated: bool) -> str:
    t = creds.tokens
    head = f"Logged in as {creds.username}" if authenticated else f"Session expired for {creds.username}; run `spec-kitty auth login`"
    return "\n".join([
        head,
        f"  Server:         {creds.server_url}",
        f"  Access token:   {_relative(t.access_expires_at, now)} ({format_instant(t.access_expires_at)})",
        f"  Refresh token:  {_relative(t.refresh_expires_at, now)} ({format_instant(t.refresh_expires_at)})",
    ])


@auth.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the stored session (offline). Exit 0 when logged in, 1 when not."""
    container = _container(ctx)
    try:
        report = container.status().execute()
    except AuthError as exc:
        if as_json:
            click.echo(_status_json(StatusReport(authenticated=False)))
        _fail(str(exc))
        return
    if as_json:
        click.echo(_status_json(report))
    elif report.credentials is not None:
        click.echo(_status_text(report.credentials, container.clock().now(), report.authenticated))
    elif report.unreadable_file is not None:
        click.echo(f"Not logged in: the credentials file {report.unreadable_file} is not valid; "
                   "`spec-kitty auth login` replaces it.")
    else:
        click.echo("Not logged in. Run `spec-kitty auth login`.")
    ctx.exit(0 if report.authenticated else 1)


@click.group()
@click.version_option(package_name="kitty-auth", prog_name="spec-kitty")
def cli() -> None:
    """spec-kitty (authentication commands)."""


cli.add_command(auth)


def main() -> None:
    cli(prog_name="spec-kitty")
