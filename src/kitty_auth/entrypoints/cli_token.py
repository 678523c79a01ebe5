"""`auth token`: print an access token for scripts, and nothing else on stdout.

Registered on the `auth` group by ``entrypoints/cli.py``, using its shared machinery (`_run`,
`_offline`, `_waiting`). Its start-up is the offline commands' (no dependency-injector, no
network code) while the token is fresh; a refresh builds the full container and goes through
``EnsureFreshToken`` like every other refresh (single-flight; an interrupt never loses the
session). Which token, with SPEC_KITTY_SAAS_TOKEN set and with `--server`/`--user`:
``domain/token_source.py``.
"""

from __future__ import annotations

import click

from kitty_auth.domain.accounts import AmbiguousSessionError
from kitty_auth.entrypoints import cli


@click.command()
@click.option("--server", metavar="URL", help="The server of the stored session to use (https:// is implied).")
@click.option("--user", metavar="NAME", help="The user of the stored session to use.")
@click.pass_context
def token(ctx: click.Context, server: str | None, user: str | None) -> None:
    """Print the access token and a newline, refreshed first when needed (for scripts).

    Without options: SPEC_KITTY_SAAS_TOKEN's token when it is set, else the active session's.
    --server/--user read another stored session without making it the active one (--user always
    reads a stored session; --server alone gets SPEC_KITTY_SAAS_TOKEN's token when that is the
    server the token is for). Exit 1 when there is no session.
    """

    def run() -> str:
        container = cli._offline(ctx)
        source = container.token_source()
        try:
            choice = source.choose(server, user)
        except AmbiguousSessionError as exc:
            raise click.UsageError(cli._localised(str(exc)), ctx) from None
        with cli._waiting(choice.server_url, container.repository()):  # a refresh may wait for the lock or server
            return source.token(choice).access

    access = cli._run(run)
    click.echo(access)
