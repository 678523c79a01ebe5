"""The one error tree of kitty-auth: every error the package raises derives from AuthError.

AuthError
 +-- NotAuthenticatedError           no usable session is stored
 +-- SessionExpiredError             the refresh token was rejected or has expired
 |    +-- EnvironmentTokenRejectedError  401 for the token of SPEC_KITTY_SAAS_TOKEN (never refreshed)
 |    +-- RenewalUnavailableError    this process cannot renew the session (a machine session
 |                                   without its client secret here); the session is kept
 +-- InvalidCredentialsError         the server refused the username or password (401 on login)
 +-- InvalidServerUrlError           the server URL is not an https:// URL we can use
 +-- InvalidInputError               a value the user typed cannot be used (e.g. empty username)
 |    +-- InvalidEnvironmentTokenError  SPEC_KITTY_SAAS_TOKEN holds what no HTTP header may carry
 +-- ServerError                     the server could not be used for this request
 |    +-- TransientServerError       worth retrying later; a still-valid token stays usable
 |    |    +-- NetworkError          connect error, timeout, DNS
 |    |    +-- ServerUnavailableError  5xx
 |    |    +-- RateLimitedError      429
 |    +-- TLSVerificationError       the server's certificate could not be verified
 |    +-- UnexpectedStatusError      any other status (a redirect, 400, 403...)
 |    +-- MalformedResponseError     HTML, truncated JSON, missing or mistyped fields
 |    +-- TokenRejectedError         401 on refresh / ws-token (a use case turns it into
 |                                   SessionExpiredError after deciding what to keep)
 +-- CredentialsFileError            the credentials file cannot be read or written safely
 |    +-- CorruptCredentialsError    the file exists but is not a credentials file
 |    +-- CredentialsFileEditError   our keys cannot be edited in without changing others' data
 |    +-- CredentialsLockTimeoutError  another process held the lock for too long
 |         +-- LogoutLockTimeoutError  ... while logout waited: nothing was removed
 +-- WebSocketError                  the live-sync connection failed (not authentication)

Each error's ``str()`` is the one sentence a user sees; it never contains a token or password.
"""

from __future__ import annotations

import os
from pathlib import Path

_WINDOWS = os.name == "nt"  # the advice for an unusable credentials file differs there (ACLs)


class AuthError(Exception):
    """Base class of every error kitty-auth raises."""

    message = "Authentication failed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or type(self).message
        super().__init__(self.message)


class NotAuthenticatedError(AuthError):
    message = "Not logged in. Run `spec-kitty auth login` first."


class SessionExpiredError(AuthError):
    message = "Session expired. Please log in again."


class EnvironmentTokenRejectedError(SessionExpiredError):
    """The server answered 401 to the access token of an environment variable (SPEC_KITTY_SAAS_TOKEN).

    That token has no refresh token and is not ours to change: no refresh is tried and no stored
    session is touched. ``variable`` is the variable's name (its value is never shown).
    """

    def __init__(self, variable: str) -> None:
        self.variable = variable
        super().__init__(f"The server refused the token in {variable} (HTTP 401): it is never refreshed; "
                         f"set {variable} to a valid token, or unset it to use the stored session.")


class RenewalUnavailableError(SessionExpiredError):
    """The session needs renewing and this process cannot do it, but the session is kept.

    A machine session without a refresh token is renewed with its client secret, read from the
    environment of the process that renews; another process that has it can still renew the
    stored session. Like a transient failure, a still-valid access token is used meanwhile.
    ``reason`` is the sentence that follows the contract's ``Session expired. Please log in again.``
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{SessionExpiredError.message} {reason}")


class InvalidCredentialsError(AuthError):
    message = "Invalid username or password."


class InvalidServerUrlError(AuthError):
    """Raised before any network traffic for a URL that is not a usable https:// URL."""


class InvalidInputError(AuthError):
    """A value typed by the user cannot be used."""


class InvalidEnvironmentTokenError(InvalidInputError):
    """An environment variable meant to hold an access token (SPEC_KITTY_SAAS_TOKEN) cannot be sent as one."""

    def __init__(self, variable: str) -> None:
        self.variable = variable
        super().__init__(f"{variable} cannot be used as an access token: an HTTP header cannot carry it (it must be "
                         f"the token alone: printable ASCII, no spaces or control characters, at most 16 KiB); "
                         f"fix or unset {variable}.")


class ServerError(AuthError):
    message = "The server could not be used."


class TransientServerError(ServerError):
    """A failure worth retrying later; nothing stored was changed."""


class NetworkError(TransientServerError):
    """``detail`` names the host and the cause: ``spec-kitty.example.com: connection refused``.

    Causes: unknown host, connection refused, timed out, no answer within N s, connection
    dropped, connection failed. Never a token, a URL's user info or an exception's own text.
    """

    message = "Cannot reach server. Check your connection."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(f"{type(self).message} ({detail})" if detail else None)


class ServerUnavailableError(TransientServerError):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"Server temporarily unavailable (HTTP {status}); try again later.")


class RateLimitedError(TransientServerError):
    def __init__(self, status: int = 429) -> None:
        self.status = status
        super().__init__(
            f"Server is limiting requests (HTTP {status}); wait a moment and try again."
        )


class TLSVerificationError(ServerError):
    message = (
        "The server's certificate could not be verified; check the server URL, "
        "or set SSL_CERT_FILE to a CA bundle that signs it."
    )


class UnexpectedStatusError(ServerError):
    def __init__(self, status: int, hint: str = "") -> None:
        self.status = status
        super().__init__(f"Server answered with unexpected HTTP status {status}{hint}.")


class MalformedResponseError(ServerError):
    message = "The server's response was not understood; check the server URL."


class TokenRejectedError(ServerError):
    """401 on refresh or ws-token: the presented token is no longer accepted."""

    message = "Session expired. Please log in again."


class CredentialsFileError(AuthError):
    """``symlink``: the path found to be a symbolic link (the credentials file or its lock).

    The advice differs: for a mode problem ``chmod 600 <path>``; for a symlink, removing the
    link -- never ``chmod``, which follows the link and changes its target. On Windows, where
    ``chmod`` means nothing (access is the file's ACL, and a file another program keeps open
    cannot be replaced), the advice names those instead.
    """

    def __init__(self, path: Path | str, detail: str = "", *, symlink: Path | str | None = None) -> None:
        self.path = Path(path)
        self.symlink = Path(symlink) if symlink is not None else None
        if self.symlink is not None:
            detail = detail or f"{self.symlink} is a symbolic link"
            fix = f"Try: rm {self.symlink} (this removes only the link; chmod would change its target)"
        elif _WINDOWS:
            fix = (f"Try: check that your user account has full control of {self.path} "
                   "(Properties > Security) and that no other program keeps it open")
        else:
            fix = f"Try: chmod 600 {self.path}"
        self.detail = detail
        # The contract's sentence verbatim, then what was found (a path and an OS reason, never a
        # value from the file) and the suggested command.
        found = f" ({detail})" if detail else ""
        super().__init__(f"Cannot access credentials file. Check permissions.{found} {fix}")


class CorruptCredentialsError(CredentialsFileError):
    def __init__(self, path: Path | str, detail: str = "") -> None:
        super().__init__(path, detail)
        self.message = (
            f"The credentials file {self.path} is not valid; "
            "run `spec-kitty auth login` to replace it."
        )
        self.args = (self.message,)


class CredentialsFileEditError(CredentialsFileError):
    """The file parses, but our keys cannot be written into it without changing what other
    programs keep there: nothing is written (never a fresh file that would drop their data)."""

    def __init__(self, path: Path | str, detail: str = "") -> None:
        super().__init__(path, detail)
        self.message = (
            f"The credentials file {self.path} was left unchanged: the session could not be written into it "
            "without changing data other programs keep there. Move that data to a file of its own, or move "
            "the file aside, and try again."
        )
        self.args = (self.message,)


class CredentialsLockTimeoutError(CredentialsFileError):
    def __init__(self, path: Path | str, seconds: float, holder: str | None = None) -> None:
        super().__init__(path)
        self.seconds = seconds
        self.holder = holder  # e.g. "process 1234", when the repository could tell
        held_by = f" (held by {holder})" if holder else ""
        self.message = (
            f"Another spec-kitty process held the credentials lock {self.path} "
            f"for more than {seconds:g} s{held_by}; try again."
        )
        self.args = (self.message,)


class LogoutLockTimeoutError(CredentialsLockTimeoutError):
    """Logout found the lock busy (a refresh or login in progress): nothing was removed.

    Removing the file without the lock would race the holder, which would then store its
    tokens again: the user would be told "logged out" and still be logged in.
    """

    def __init__(self, path: Path | str, seconds: float, holder: str | None = None) -> None:
        super().__init__(path, seconds, holder)
        held_by = f" (held by {holder})" if holder else ""
        self.message = (
            f"Another spec-kitty process held the credentials lock {self.path} "
            f"for more than {seconds:g} s{held_by}; nothing was removed and you are still logged in: "
            "run `spec-kitty auth logout` again once that process is done."
        )
        self.args = (self.message,)


class WebSocketError(AuthError):
    message = "The live-sync connection failed."
