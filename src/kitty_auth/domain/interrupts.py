"""Interrupts (Ctrl-C, a SIGTERM the CLI turned into an exception) that arrive while a session the server issued is not yet stored.

Python raises KeyboardInterrupt in the main thread wherever it happens to be, and a host's signal
handler may raise SystemExit the same way. Between "the server issued or rotated tokens" and "they
are in the credentials file" that would cost a session: a rotated refresh token is blacklisted at
once, and a just-issued login would stay live at the server with nobody holding it. So the use
cases finish that step first -- the save (run once more if the interrupt cut it), or, for a login
that cannot be stored, a revocation -- and then re-raise the interrupt unchanged. The library never
installs a signal handler; the CLI turns SIGTERM into ``Terminated``, a KeyboardInterrupt.

An interrupt can only be raised between two bytecodes, so the steps guarded here start in the
frame that received the tokens; nothing that blocks (a request, the lock, the file's fsync) lies
outside them. A second interrupt during the finishing step is not held back: whoever presses Ctrl-C
twice gets out at once.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from kitty_auth.domain.errors import AuthError
from kitty_auth.domain.model import Credentials
from kitty_auth.domain.revocation import LogoutResult

log = logging.getLogger("kitty_auth")

T = TypeVar("T")

# What an interrupt looks like in the interrupted thread: Ctrl-C (and the CLI's SIGTERM, a subclass),
# or a host's signal handler that calls sys.exit().
INTERRUPTS: Final = (KeyboardInterrupt, SystemExit)


def finish_after_interrupt(step: Callable[[], T], what: str) -> T | None:
    """Run ``step`` once more, after an interrupt cut it short; call it in the ``except INTERRUPTS``
    block, then re-raise. ``step`` must be idempotent (it may have completed just before the interrupt).

    A second interrupt propagates. An AuthError (the file cannot be written...) is logged and None
    returned: the interrupt is still what the caller re-raises.
    """
    log.info("interrupted while %s; finishing that first", what)
    try:
        return step()
    except AuthError as exc:
        log.warning("interrupted, and %s failed (%s)", what, type(exc).__name__)
        return None


class LoginOutcome(enum.Enum):
    STORED = "stored"
    REVOKED = "revoked"
    NEITHER = "neither"  # not stored, and the revocation failed (the result says why)


@dataclass(frozen=True)
class InterruptedLogin:
    """What a login interrupted after the server issued a session did with it.

    Attached to the interrupt (:func:`report_interrupted_login`) before it is re-raised; the CLI
    prints :meth:`sentence`, a REPL shows it as the exception's note.
    """

    outcome: LoginOutcome
    stored: Credentials | None = None  # STORED
    revocation: LogoutResult | None = None  # REVOKED, NEITHER (None: not even tried)

    @classmethod
    def revoked_or_not(cls, revocation: LogoutResult) -> InterruptedLogin:
        return cls(LoginOutcome.REVOKED if revocation.revoked else LoginOutcome.NEITHER, revocation=revocation)

    def sentence(self) -> str:
        if self.outcome is LoginOutcome.STORED and self.stored is not None:
            return (f"Login interrupted after the server had issued the session: it was stored, so you are "
                    f"logged in as {self.stored.username} at {self.stored.server_url} "
                    "(`spec-kitty auth logout` ends it).")
        if self.outcome is LoginOutcome.REVOKED:
            return "Login interrupted: nothing was stored, and the server revoked the session it had just issued."
        why = self.revocation.reason if self.revocation is not None else "it could not be stored"
        return (f"Login interrupted: nothing was stored, and the session the server had just issued was not "
                f"revoked ({why}); it ends when it expires.")


_ATTRIBUTE: Final = "kitty_auth_interrupted_login"


def report_interrupted_login(interrupt: BaseException, what: InterruptedLogin) -> None:
    """Say on ``interrupt`` (about to be re-raised) what happened to the issued session."""
    setattr(interrupt, _ATTRIBUTE, what)
    interrupt.add_note(what.sentence())


def interrupted_login(interrupt: BaseException) -> InterruptedLogin | None:
    """What :func:`report_interrupted_login` attached to ``interrupt``, if anything."""
    what = getattr(interrupt, _ATTRIBUTE, None)
    return what if isinstance(what, InterruptedLogin) else None
