"""Import dependency-injector without its pydantic probe: about 30 ms off every command's start-up.

dependency-injector imports pydantic only to see whether it is v1 (whose ``BaseSettings``
``Configuration.from_pydantic`` would use); with pydantic v2 (we require >= 2.5) and no
pydantic-settings that import changes nothing. So `load()`, while dependency-injector is first
imported, makes *its* `import pydantic` fail: in the importing thread only, and only when
pydantic-settings is not installed, `import pydantic` raises ModuleNotFoundError for the duration
of that one import. pydantic imports normally afterwards (the HTTP adapter needs it). `auth status`
never needs pydantic (tests/unit/test_startup_imports.py checks it; bench/startup.py measures it).

This module is the container's only start-up trick; keeping it here leaves container.py as wiring.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Any


class SkipPydanticForDI:
    """A meta-path finder that refuses `pydantic` to one thread while it imports dependency-injector."""

    def __init__(self) -> None:
        self._thread = threading.get_ident()
        self._active = True

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> None:
        if not self._active or threading.get_ident() != self._thread:
            return None
        if name == "pydantic_settings":  # installed: leave dependency-injector's pydantic support alone
            if any(f is not self and getattr(f, "find_spec", None) and f.find_spec(name, path) for f in sys.meta_path):
                self._active = False
            return None
        if name == "pydantic":
            raise ModuleNotFoundError("skipped while importing dependency_injector", name=name)
        return None


def load() -> None:
    """Import ``dependency_injector.containers`` and ``.providers``, skipping the probe when it still matters.

    A no-op beyond the import itself when dependency-injector or pydantic is already imported
    (then there is nothing left to save).
    """
    hook: SkipPydanticForDI | None = None
    if "dependency_injector.providers" not in sys.modules and "pydantic" not in sys.modules:
        hook = SkipPydanticForDI()
        sys.meta_path.insert(0, hook)
    try:
        import dependency_injector.containers  # noqa: F401
        import dependency_injector.providers  # noqa: F401
    finally:
        if hook is not None:
            sys.meta_path.remove(hook)
