"""Drop-in replacement for spec-kitty 2.x's ``specify_cli.sync.auth``: ``from kitty_auth.spec_kitty2 import *``.

The implementation is ``kitty_auth.entrypoints.spec_kitty2``; this module only gives it the
short, stable name the host's one-line swap uses. Its public names are exactly the
implementation's ``__all__`` (one list, kept there).
"""

from kitty_auth.entrypoints.spec_kitty2 import *  # noqa: F403 - exactly the names in __all__
from kitty_auth.entrypoints.spec_kitty2 import __all__ as __all__
