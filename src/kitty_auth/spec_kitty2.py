"""Drop-in replacement for spec-kitty 2.x's ``specify_cli.sync.auth``: ``from kitty_auth.spec_kitty2 import *``.

The implementation is ``kitty_auth.entrypoints.spec_kitty2``; this module only gives it the
short, stable name the host's one-line swap uses.
"""

from kitty_auth.entrypoints.spec_kitty2 import (
    CREDENTIALS_PATH,
    LOCK_PATH,
    SPEC_KITTY_DIR,
    AuthClient,
    AuthenticationError,
    CredentialStore,
    CredentialsAccessError,
    SyncConfig,
)

__all__ = [
    "CREDENTIALS_PATH",
    "LOCK_PATH",
    "SPEC_KITTY_DIR",
    "AuthClient",
    "AuthenticationError",
    "CredentialStore",
    "CredentialsAccessError",
    "SyncConfig",
]
