"""kitty_auth.di_import: dependency-injector imported without its pydantic probe, and nothing else changed.

The finder is tested in process (its decisions), the whole hook in fresh interpreters (import state
is global): pydantic stays out of a plain start-up, imports normally afterwards, and
dependency-injector's pydantic-settings support is untouched when pydantic-settings is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kitty_auth.di_import import SkipPydanticForDI


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEC_KITTY_", "SSL_CERT"))}
    env.update(extra)
    return env


def _python(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=_env(**env), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_finder_refuses_pydantic_to_the_importing_thread_only() -> None:
    finder = SkipPydanticForDI()
    with pytest.raises(ModuleNotFoundError) as info:
        finder.find_spec("pydantic")
    assert info.value.name == "pydantic"
    assert finder.find_spec("pydantic.fields") is None and finder.find_spec("httpx") is None
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.append(finder.find_spec("pydantic")))
    other.start()
    other.join()
    assert seen == [None]  # another thread importing pydantic meanwhile is not disturbed


def test_the_finder_stands_down_when_pydantic_settings_is_installed(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pydantic_settings").mkdir()
    (tmp_path / "pydantic_settings" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = SkipPydanticForDI()
    assert finder.find_spec("pydantic_settings") is None
    assert finder.find_spec("pydantic") is None  # dependency-injector's pydantic support is kept


def test_the_finder_keeps_refusing_when_pydantic_settings_is_absent() -> None:
    finder = SkipPydanticForDI()
    assert finder.find_spec("pydantic_settings") is None
    with pytest.raises(ModuleNotFoundError):
        finder.find_spec("pydantic")


def test_loading_the_container_imports_no_pydantic_and_leaves_no_finder_behind() -> None:
    code = (
        "import sys, kitty_auth.container.di\n"
        "print('pydantic' in sys.modules, any(type(f).__name__ == 'SkipPydanticForDI' for f in sys.meta_path))\n"
    )
    assert _python(code) == "False False"


def test_without_the_hook_dependency_injector_would_import_pydantic() -> None:
    """What the hook saves is real: a plain import of dependency-injector pulls pydantic in."""
    assert _python("import sys, dependency_injector.providers; print('pydantic' in sys.modules)") == "True"


def test_pydantic_imports_normally_after_the_container() -> None:
    code = (
        "import sys, kitty_auth.container.di\n"
        "assert 'pydantic' not in sys.modules\n"
        "import pydantic\n"
        "from kitty_auth.adapters.simplejwt_gateway import HttpxTokenGateway\n"
        "print(pydantic.VERSION)\n"
    )
    assert _python(code).startswith("2.")


def test_dependency_injector_keeps_pydantic_settings_support_when_installed(tmp_path: Path) -> None:
    """The hook skips dependency-injector's `import pydantic` only when pydantic-settings is absent."""
    package = tmp_path / "site" / "pydantic_settings"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from pydantic import BaseModel as BaseSettings\n")
    code = (
        "import sys, kitty_auth.container.di\n"
        "from dependency_injector import providers\n"
        "import pydantic_settings\n"
        "class S(pydantic_settings.BaseSettings):\n"
        "    a: int = 1\n"
        "c = providers.Configuration()\n"
        "c.from_pydantic(S())\n"
        "print(c.a())\n"
    )
    assert _python(code, PYTHONPATH=str(tmp_path / "site")) == "1"
