"""The `kitty-auth` console script and `python -m kitty_auth`: the CLI, with its first moments covered.

Importing the CLI takes a few tens of milliseconds; a Ctrl-C or SIGTERM that lands during them
(a script cancelled at once, a chaos run) would otherwise end in a Python traceback or an
unexplained death by signal. Nothing is stored or sent yet at that point, so they simply end the
process the way they end it later: `Aborted.` (130) or `Terminated.` (143).
"""

from __future__ import annotations

import signal
import sys


def _terminated_early(signum: int, frame: object) -> None:
    sys.stderr.write("\nTerminated.\n")
    raise SystemExit(143)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated_early)  # replaced by the CLI's own handler once it is imported
    try:
        from kitty_auth.entrypoints.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("\nAborted.\n")
        raise SystemExit(130) from None
    cli_main()
