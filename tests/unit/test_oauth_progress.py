"""What the terminal shows while an OAuth login waits: the spinner and the log lines of the polls."""

from __future__ import annotations

import io
import logging

import pytest

from kitty_auth.entrypoints.oauth_login import TerminalLoginProgress

CLEAR = "\r\033[K"


def _progress() -> tuple[TerminalLoginProgress, io.StringIO]:
    stream = io.StringIO()
    return TerminalLoginProgress(lambda _line: None, stream, tty=True, sleep=lambda _s: None), stream


def test_at_debug_the_spinner_is_cleared_before_each_poll_so_log_lines_start_on_a_clean_line(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # SPEC_KITTY_LOG_LEVEL=DEBUG sets the root logger so
    progress, stream = _progress()
    progress.wait(0.05)
    written = stream.getvalue()
    assert "Waiting for approval" in written
    assert written.endswith(CLEAR)


def test_at_warning_the_spinner_stays_during_the_poll(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    logging.getLogger("kitty_auth").setLevel(logging.NOTSET)
    progress, stream = _progress()
    progress.wait(0.05)
    written = stream.getvalue()
    assert "Waiting for approval" in written and not written.endswith(CLEAR)
    progress.finished()
    assert stream.getvalue().endswith(CLEAR)
