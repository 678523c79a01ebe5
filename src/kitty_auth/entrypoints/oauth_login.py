"""The terminal side of OAuth logins: choosing the method, the LoginProgress the user sees, and running the chosen use case.

Imported by `auth login` only when it may need OAuth (never by `status` or `logout`), so the
start-up import guard holds. Everything the user must read goes to stderr; stdout keeps the
one result line the CLI prints ("Logged in as ...").
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from kitty_auth.domain.model import Credentials, LoginMethod
from kitty_auth.domain.oauth import DeviceAuthorization

SPINNER = "|/-\\"
FRAME_SECONDS = 0.1


def _minutes(seconds: float) -> str:
    whole = max(0, int(seconds))
    if whole >= 120:
        return f"{whole // 60} minutes"
    if whole >= 60:
        return f"{whole // 60} minute {whole % 60} s" if whole % 60 else "1 minute"
    return f"{whole} s"


class TerminalLoginProgress:
    """LoginProgress on a terminal: the URL always printed, the timeout announced, a spinner while polling.

    ``echo`` writes one line to stderr (the CLI's, which knows about open prompt lines). The
    spinner is drawn only when ``stream`` is a terminal; a pipe or a log gets plain lines.
    """

    def __init__(self, echo: Callable[[str], None], stream: TextIO | None = None, *,
                 tty: bool | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._echo = echo
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._sleep = sleep
        self._spinning = False
        self._frame = 0
        self._expires_at: float | None = None

    # -- browser

    def browser_login(self, url: str, opened: bool, timeout: float) -> None:
        if opened:
            self._echo("Your browser has been opened to log in. If it did not open, visit this URL:")
        else:
            self._echo("No browser could be opened here; open this URL in a browser on this machine:")
        self._echo(f"  {url}")
        self._echo(f"Waiting up to {_minutes(timeout)} for the login to finish in the browser (Ctrl-C to cancel).")

    def callback_refused(self) -> None:
        self._clear()
        self._echo("Ignored a browser callback that does not belong to this login (wrong or missing state); "
                   "still waiting.")

    # -- device

    def device_login(self, authorization: DeviceAuthorization) -> None:
        self._expires_at = time.monotonic() + authorization.expires_in
        if authorization.verification_uri_complete:
            self._echo("To log in, open this URL in a browser on any device:")
            self._echo(f"  {authorization.verification_uri_complete}")
            self._echo(f"or open {authorization.verification_uri} and enter the code:")
        else:
            self._echo(f"To log in, open {authorization.verification_uri} in a browser on any device "
                       "and enter the code:")
        self._echo(f"  {authorization.user_code}")
        self._echo(f"The code expires in {_minutes(authorization.expires_in)}. Waiting for approval (Ctrl-C to cancel).")

    def wait(self, seconds: float) -> None:
        if not self._tty:
            self._sleep(seconds)
            return
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._draw()
            self._sleep(min(FRAME_SECONDS, left))
        if _logs_may_appear():
            # The poll that follows logs to the same terminal: its lines must not be glued to
            # the spinner's (the spinner is drawn again by the next wait).
            self._clear()

    def finished(self) -> None:
        self._clear()

    # -- the spinner

    def _draw(self) -> None:
        self._frame = (self._frame + 1) % len(SPINNER)
        remaining = ""
        if self._expires_at is not None:
            remaining = f" (code expires in {_minutes(self._expires_at - time.monotonic())})"
        self._stream.write(f"\r{SPINNER[self._frame]} Waiting for approval{remaining}   ")
        self._stream.flush()
        self._spinning = True

    def _clear(self) -> None:
        if self._spinning:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._spinning = False


def _logs_may_appear() -> bool:
    """Whether records at INFO (httpx's request lines, ours) may be written during a poll."""
    return logging.getLogger().isEnabledFor(logging.INFO) or logging.getLogger("kitty_auth").isEnabledFor(logging.INFO)


def requested_method(web: bool, device: bool) -> LoginMethod | None:
    """The method the flags ask for (None: the server decides). The CLI refuses contradicting flags first."""
    if web:
        return LoginMethod.WEB
    if device:
        return LoginMethod.DEVICE
    return None


def oauth_login(container: Any, target: str, requested: LoginMethod | None,
                progress: TerminalLoginProgress) -> Credentials | None:
    """Log in to ``target`` by OAuth as chosen; None when the server (or the flags) want the password prompts."""
    plan = container.choose_login_method().execute(target, requested)
    if plan.method is LoginMethod.PASSWORD:
        return None
    if plan.method is LoginMethod.DEVICE:
        return container.login_with_device().execute(target, plan.endpoints, progress)  # type: ignore[no-any-return]
    fallback = container.login_with_device() if plan.auto else None
    return container.login_with_browser().execute(  # type: ignore[no-any-return]
        target, plan.endpoints, progress, device_fallback=fallback)
