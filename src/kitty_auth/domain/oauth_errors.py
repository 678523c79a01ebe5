"""The errors of OAuth logins (browser, device code, discovery), each one sentence a user can act on.

They extend the one tree in ``domain/errors.py``::

    AuthError
     +-- LoginAbortedError            the user or the server ended an OAuth login; nothing stored
     |    +-- BrowserLoginDeniedError   the browser came back with error=access_denied
     |    +-- BrowserLoginFailedError   the browser came back with another OAuth error
     |    +-- BrowserLoginTimeoutError  no valid callback before the announced timeout
     |    +-- DeviceCodeDeniedError     the device code was denied
     |    +-- DeviceCodeExpiredError    the device code expired before approval
     +-- ServerError
          +-- UnsafeEndpointError       an endpoint is not https on the server's origin
          +-- OAuthUnsupportedError     the server offers no endpoint for the chosen method
          +-- OAuthProtocolError        the token endpoint answered an OAuth error we cannot use
          +-- MetadataUnavailableError  (a ServerUnavailableError) 5xx on the metadata document
          +-- MetadataMalformedError    (a MalformedResponseError) HTML, bad JSON, missing fields

No message ever contains a code, verifier, token or the value of a ``state``.
"""

from __future__ import annotations

from kitty_auth.domain.errors import AuthError, MalformedResponseError, ServerError, ServerUnavailableError

METADATA_PATH = "/.well-known/oauth-authorization-server"


class LoginAbortedError(AuthError):
    """An OAuth login ended without a session; nothing was stored."""


class BrowserLoginDeniedError(LoginAbortedError):
    message = "Login denied in the browser; nothing was stored."


class BrowserLoginFailedError(LoginAbortedError):
    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__(f"The browser login failed: the server answered '{error}'; nothing was stored.")


class BrowserLoginTimeoutError(LoginAbortedError):
    def __init__(self, seconds: float, refused: int = 0) -> None:
        self.seconds, self.refused = seconds, refused
        extra = ""
        if refused:
            extra = (f" {refused} callback{'s' if refused != 1 else ''} with a wrong or missing state "
                     f"(not from this login) {'were' if refused != 1 else 'was'} refused.")
        super().__init__(
            f"The browser login timed out after {_duration(seconds)} without an answer; nothing was stored.{extra}"
        )


class DeviceCodeDeniedError(LoginAbortedError):
    message = "The device login was denied; nothing was stored."


class DeviceCodeExpiredError(LoginAbortedError):
    message = "The device code expired before it was approved; run the login again."


class UnsafeEndpointError(ServerError):
    def __init__(self, name: str, problem: str = "is not https on the server's own origin") -> None:
        self.name = name
        article = "an" if name[:1] in "aeiou" else "a"
        super().__init__(f"The server's OAuth metadata names {article} {name} that {problem}; "
                         "refusing to log in there.")


class OAuthUnsupportedError(ServerError):
    def __init__(self, what: str) -> None:
        super().__init__(f"The server does not offer {what}; choose another login method.")


class OAuthProtocolError(ServerError):
    def __init__(self, error: str, during: str) -> None:
        self.error = error
        super().__init__(f"The server refused the {during} ('{error}'); nothing was stored.")


class MetadataUnavailableError(ServerUnavailableError):
    """5xx on the RFC 8414 document: never read as "no metadata" (that is only a 404)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.message = (f"{self.message} The server's OAuth metadata ({METADATA_PATH}) could not be "
                        "read, so the login cannot start.")
        self.args = (self.message,)


class MetadataMalformedError(MalformedResponseError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"The server's OAuth metadata ({METADATA_PATH}) was not understood ({detail}); "
            "check the server URL."
        )


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    if whole >= 60 and whole % 60 == 0:
        minutes = whole // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{whole} second{'s' if whole != 1 else ''}"
