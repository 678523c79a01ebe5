"""The machine client's credentials from the process environment: `SPEC_KITTY_MACHINE_CLIENT_ID`, and the secret from the file `SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE` names (which wins) or `SPEC_KITTY_MACHINE_CLIENT_SECRET`.

Rules (the domain's ``MachineCredentialsSource``):

* A variable that is unset, empty or blank counts as unset (CI systems expand a missing secret
  to an empty string).
* The file's content is the secret, minus one trailing newline (``\\n`` or ``\\r\\n``: what
  ``echo`` and CI secret files add) and nothing else. A secret with any other line break or
  control character is refused (it would be sent as is and refused as ``invalid_client``, or
  was never meant as one secret).
* The file is refused, one sentence each, when it cannot be read (missing, a directory, not a
  regular file, no permission), is empty (or blank), is larger than any secret (64 KiB), or is not UTF-8.
* Loose modes are an error, as ssh treats a private key: on POSIX a secret file we own that
  grants any permission to group or others is refused with the ``chmod 600`` that fixes it. A
  file owned by another user (a secret mounted by the CI system, often root's and 0444) is not
  judged: we could not fix its mode, and refusing it would protect nothing.
* Symbolic links are followed: we only read (Kubernetes mounts secrets through links).

No value read here is ever logged, and no message contains the secret; the file's path is named.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping

from kitty_auth.domain.machine import (
    CLIENT_ID_VARIABLE,
    SECRET_FILE_VARIABLE,
    SECRET_VARIABLE,
    MachineConfigurationError,
)

MAX_SECRET_BYTES = 64 * 1024


def _set(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


class EnvironmentMachineCredentials:
    """A MachineCredentialsSource over ``environ`` (default ``os.environ``), read at each call.

    ``euid`` says who we are (POSIX): a secret file of ours must be closed to other users.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 euid: Callable[[], int] | None = getattr(os, "geteuid", None)) -> None:
        self._environ = os.environ if environ is None else environ
        self._euid = euid

    def client_id(self) -> str | None:
        value = _set(self._environ.get(CLIENT_ID_VARIABLE))
        if value is None:
            return None
        value = value.strip()
        if _has_control(value):
            raise MachineConfigurationError(f"{CLIENT_ID_VARIABLE} contains a control character.")
        return value

    def secret(self) -> str | None:
        path = _set(self._environ.get(SECRET_FILE_VARIABLE))
        if path is not None:
            return _checked(_read_secret_file(path, self._euid), f"the file {SECRET_FILE_VARIABLE} names ({path})")
        value = _set(self._environ.get(SECRET_VARIABLE))
        return None if value is None else _checked(value, SECRET_VARIABLE)


def _checked(secret: str, where: str) -> str:
    if _has_control(secret):
        raise MachineConfigurationError(
            f"The client secret in {where} contains a line break or another control character "
            "(only one trailing newline is removed from a file)."
        )
    return secret


def _read_secret_file(path: str, euid: Callable[[], int] | None) -> str:
    named = f"The client secret file {path} ({SECRET_FILE_VARIABLE})"
    try:
        # Non-blocking: a FIFO (or a device) must not hang the login; it is refused below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise MachineConfigurationError(f"{named} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MachineConfigurationError(f"{named} is not a regular file.")
        if euid is not None and info.st_uid == euid() and info.st_mode & 0o077:
            raise MachineConfigurationError(
                f"{named} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}), like an unprotected "
                f"ssh key; fix it with `chmod 600 {path}`."
            )
        data = b""
        while len(data) <= MAX_SECRET_BYTES:
            chunk = os.read(fd, MAX_SECRET_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise MachineConfigurationError(f"{named} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise MachineConfigurationError(f"{named} is larger than {MAX_SECRET_BYTES // 1024} KiB: not a client secret.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MachineConfigurationError(f"{named} is not UTF-8 text.") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text.strip():
        raise MachineConfigurationError(f"{named} is empty.")
    return text
