"""`auth switch` and `auth whoami`: the commands about which stored session is the active one.

Registered on the `auth` group by ``entrypoints/cli.py``; they use its shared machinery (`_run`,
`_container`, `_auth_command`). Offline: they read and edit the credentials file only.
"""

from __future__ import annotations

import click

from kitty_auth.domain.accounts import AmbiguousSessionError
from kitty_auth.entrypoints import cli


@click.command()
@click.option("--server", metavar="URL", help="The server of the session to use (https:// is implied).")
@click.option("--user", metavar="NAME", help="The user of the session to use.")
@click.pass_context
def switch(ctx: click.Context, server: str | None, user: str | None) -> None:
    """Make another stored session the active one.

    With exactly two stored sessions and no option, switches to the other one. Every spec-kitty
    program (and `auth token`, `status`, `logout`) then uses the active session.
    """

    def run() -> None:
        container = cli._offline(ctx)
        try:
            creds, changed = container.switch().execute(server, user)
        except AmbiguousSessionError as exc:
            raise click.UsageError(cli._localised(str(exc)), ctx) from None
        if changed:
            click.echo(f"Switched to {creds.username} at {creds.server_url}.")
        else:
            click.echo(f"Already using {creds.username} at {creds.server_url}.")

    cli._run(run)


@click.command()
@click.pass_context
def whoami(ctx: click.Context) -> None:
    """Print the active session's user, team and server on one line (offline). Exit 1 when logged out."""

    def run() -> bool:
        container = cli._offline(ctx)
        cli._warn_unreadable_config(container)
        environment = cli._token_from_environment(container)
        if environment is not None:  # the user behind that token is not known offline
            variable, server_url = environment
            click.echo(f"token from {variable} at {server_url}")
            return True
        report = container.status().execute()
        creds = report.credentials
        if creds is None:
            cli._echo_err(f"Not logged in. Run `{cli._auth_command()} login`.")
            return False
        if not report.authenticated:
            cli._echo_err(f"Session expired for {creds.username} at {creds.server_url}; "
                          f"run `{cli._auth_command()} login`.")
            return False
        team = f" (team {creds.team_slug})" if creds.team_slug else ""
        click.echo(f"{creds.username} at {creds.server_url}{team}")
        return True

    ctx.exit(0 if cli._run(run) else 1)
