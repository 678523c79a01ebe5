"""The composition root: the one place that names adapters and wires them to the use cases.

Two ways in, one set of parts:

* ``Container`` / ``build_container`` (``di.py``): the dependency-injector container, for every
  command and the library;
* ``OfflineContainer`` (``offline.py``): the same parts for the commands that only read the
  credentials file (`status`, `whoami`, `switch`, and `token` with a fresh token), built without
  dependency-injector, whose import (asyncio, ssl) costs a start-up about as much as the rest.

The names of ``di.py`` are loaded on first access (a module ``__getattr__``), so importing this
package costs no dependency-injector. Figures: README.md, "Performance"; the import guard:
tests/unit/test_startup_imports.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kitty_auth.adapters.settings import Settings, configure_logging, load_settings
from kitty_auth.container.offline import OfflineContainer, is_container, login_server

if TYPE_CHECKING:
    from kitty_auth.container.di import Container, build_container, close_network

__all__ = ["Container", "OfflineContainer", "Settings", "build_container", "close_network", "configure_logging",
           "is_container", "load_settings", "login_server"]

_FROM_DI = {"Container", "build_container", "close_network"}


def __getattr__(name: str) -> Any:
    if name not in _FROM_DI:
        raise AttributeError(f"module 'kitty_auth.container' has no attribute {name!r}")
    value = getattr(importlib.import_module("kitty_auth.container.di"), name)
    globals()[name] = value
    return value
