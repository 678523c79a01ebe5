"""`auth doctor`: each check with a mark, what it found and its fix; `--json` for scripts. Exit 0 unless a problem.

Registered on the `auth` group by ``entrypoints/cli.py``; it uses that module's shared machinery
(`_run`, `_container`, `_localised`). The checks and their verdicts are the domain's
(``domain/doctor.py``); this module only renders them. At import it needs Click alone: the
doctor's code is loaded when the command runs, so `auth status` pays nothing for it.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from kitty_auth.entrypoints import cli

if TYPE_CHECKING:
    from kitty_auth.domain.doctor import Check, DoctorReport

_MARKS = {"ok": "✓", "warning": "!", "problem": "✗", "skipped": "-"}
_ASCII_MARKS = {"ok": "[ok]", "warning": "[!]", "problem": "[X]", "skipped": "[-]"}


def _marks() -> dict[str, str]:
    """The marks stdout can print: ✓ and ✗ where its encoding has them, plain ASCII elsewhere."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(_MARKS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return _ASCII_MARKS
    return _MARKS


def _check_json(check: Check) -> dict[str, Any]:
    return {"name": check.name, "status": check.status.value, "found": cli._localised(check.found),
            "fix": None if check.fix is None else cli._localised(check.fix), **check.details}


def report_json(report: DoctorReport) -> str:
    from kitty_auth.domain.doctor import Status

    return json.dumps({
        "ok": report.exit_code == 0,
        "problems": report.count(Status.PROBLEM),
        "warnings": report.count(Status.WARNING),
        "checks": [_check_json(check) for check in report.checks],
    })


def report_text(report: DoctorReport) -> str:
    from kitty_auth.domain.doctor import Status

    marks = _marks()
    lines: list[str] = []
    for check in report.checks:
        first, *more = cli._localised(check.found).split("\n")
        lines.append(f"{marks[check.status.value]} {check.name}: {first}")
        lines += [f"    {line}" for line in more]
        if check.fix is not None:
            lines.append(f"    fix: {cli._localised(check.fix)}")
    problems, warnings = report.count(Status.PROBLEM), report.count(Status.WARNING)
    if problems:
        lines.append(f"{problems} problem{'s' if problems != 1 else ''}"
                     f"{f', {warnings} warning' + ('s' if warnings != 1 else '') if warnings else ''}: see the fixes above.")
    elif warnings:
        lines.append(f"No problems; {warnings} warning{'s' if warnings != 1 else ''}.")
    else:
        lines.append("All is well.")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the checks) and nothing else on stdout.")
@click.option("--offline", is_flag=True, help="Check this machine only: contact no server.")
@click.option("--check-session", is_flag=True,
              help="Also refresh the active session if needed and have the server accept it (sends the token).")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, offline: bool, check_session: bool) -> None:
    """Say what is wrong with the set-up, and how to fix it.

    Checks the home folder, the credentials file and its lock, config.toml, TLS trust, the servers
    and the stored sessions. Changes nothing. Sends no token unless --check-session. Exit 0 when nothing is a problem (warnings allowed),
    1 otherwise.
    """
    if offline and check_session:
        raise click.UsageError("--check-session asks the server; it cannot be combined with --offline.")

    def run() -> int:
        container = cli._container(ctx)
        report = container.doctor().execute(offline=offline, check_session=check_session)
        click.echo(report_json(report) if as_json else report_text(report))
        return report.exit_code

    ctx.exit(cli._run(run))
