"""The domain imports only the standard library and `kitty_auth.domain.*` (an allowlist).

Every module under src/kitty_auth/domain is parsed with `ast`, and every import in it is checked
wherever it appears: at module level, inside functions and classes, under `if TYPE_CHECKING:`,
in `try` blocks, and `importlib.import_module(...)` / `__import__(...)` calls. An import is
allowed if its top-level package is in `sys.stdlib_module_names` (of the interpreter running the
test) or if it names `kitty_auth.domain` or one of its submodules (relative imports are resolved
first). Anything else, including the rest of `kitty_auth` (adapters, container, entrypoints,
testing, the package root), is reported.

The checker itself is tested on synthetic modules written to tmp_path, so a checker that
silently stopped seeing imports would fail here rather than pass everything.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

DOMAIN = "kitty_auth.domain"
SRC = Path(__file__).resolve().parents[2] / "src"


def is_allowed(module: str) -> bool:
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names or module == DOMAIN or module.startswith(DOMAIN + ".")


def _dynamic_import_target(node: ast.Call) -> str | None:
    """For `importlib.import_module(x)`, `import_module(x)` or `__import__(x)`: x, or "<dynamic>"."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in {"import_module", "__import__"}:
        return None
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        target = node.args[0].value
        return target if not target.startswith(".") else f"<relative dynamic import {target!r}>"
    return "<dynamic import of a computed name>"


def forbidden_imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported name) for every import in `path` (module `module`) outside the allowlist."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if not is_allowed(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):  # climbs above the top-level package
                    found.append((node.lineno, "." * node.level + (node.module or "")))
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if is_allowed(target):
                continue
            # `from kitty_auth import domain` imports a submodule of the domain: judge each name.
            found += [
                (node.lineno, f"{target}.{alias.name}")
                for alias in node.names
                if not is_allowed(f"{target}.{alias.name}")
            ]
        elif isinstance(node, ast.Call):
            target = _dynamic_import_target(node)
            if target is not None and not is_allowed(target):
                found.append((node.lineno, target))
    return sorted(found)


def scan(src: Path) -> dict[str, list[tuple[int, str]]]:
    """Forbidden imports of every module of the `kitty_auth.domain` package found under `src`."""
    domain_dir = src.joinpath(*DOMAIN.split("."))
    modules = sorted(domain_dir.rglob("*.py"))
    assert modules, f"no modules found under {domain_dir}"
    report = {}
    for path in modules:
        parts = path.relative_to(src).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if bad := forbidden_imports(path, module):
            report[path.relative_to(src).as_posix()] = bad  # '/'-separated on Windows too
    return report


def test_the_domain_imports_only_the_standard_library_and_itself() -> None:
    assert (SRC / "kitty_auth" / "domain" / "model.py").is_file()
    assert scan(SRC) == {}


# --- the checker, on synthetic modules ------------------------------------------------------


def _write_domain(tmp_path: Path, files: dict[str, str]) -> Path:
    domain = tmp_path / "kitty_auth" / "domain"
    domain.mkdir(parents=True)
    (tmp_path / "kitty_auth" / "__init__.py").write_text("")
    (domain / "__init__.py").write_text("")
    for name, text in files.items():
        (domain / name).parent.mkdir(parents=True, exist_ok=True)
        (domain / name).write_text(textwrap.dedent(text))
    return tmp_path


def test_an_injected_import_certifi_is_reported(tmp_path: Path) -> None:
    src = _write_domain(tmp_path, {
        "model.py": """\
            from __future__ import annotations

            import json
            import certifi
            from kitty_auth.domain.errors import MalformedResponseError
            """,
    })  # fmt: skip
    assert scan(src) == {"kitty_auth/domain/model.py": [(4, "certifi")]}


@pytest.mark.parametrize(
    ("source", "reported"),
    [
        ("import certifi", "certifi"),
        ("import httpx._client", "httpx._client"),
        ("from pydantic import BaseModel", "pydantic.BaseModel"),
        ("def f():\n    import tomlkit", "tomlkit"),
        ("class C:\n    def m(self):\n        from filelock import FileLock", "filelock.FileLock"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import click", "click"),
        ("try:\n    import orjson as json\nexcept ImportError:\n    import json", "orjson"),
        ("from kitty_auth.adapters import http_gateway", "kitty_auth.adapters.http_gateway"),
        ("from kitty_auth import testing", "kitty_auth.testing"),
        ("import kitty_auth.container", "kitty_auth.container"),
        ("import kitty_auth", "kitty_auth"),
        ("from ..adapters import clock", "kitty_auth.adapters.clock"),
        ("from .. import entrypoints", "kitty_auth.entrypoints"),
        ("from .... import x", "...."),
        ("import importlib\nimportlib.import_module('websockets')", "websockets"),
        ("__import__('truststore')", "truststore"),
        ("from importlib import import_module\nimport_module(name)", "<dynamic import of a computed name>"),
    ],
)
def test_the_checker_reports_imports_outside_the_allowlist(tmp_path: Path, source: str, reported: str) -> None:
    src = _write_domain(tmp_path, {"model.py": source + "\n"})
    assert [name for _, name in scan(src)["kitty_auth/domain/model.py"]] == [reported]


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import asyncio, json, logging\nfrom collections.abc import Callable\nimport os.path",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from datetime import datetime",
        "from kitty_auth.domain.errors import MalformedResponseError",
        "import kitty_auth.domain.model",
        "from kitty_auth import domain",
        "from . import errors\nfrom .model import Credentials",
        "from .sub.deep import thing",
        "import importlib\nimportlib.import_module('json')",
    ],
)
def test_the_checker_allows_the_standard_library_and_the_domain(tmp_path: Path, source: str) -> None:
    src = _write_domain(tmp_path, {"model.py": source + "\n"})
    assert scan(src) == {}


def test_a_relative_import_in_a_domain_subpackage_is_resolved(tmp_path: Path) -> None:
    src = _write_domain(tmp_path, {
        "sub/__init__.py": "from . import rules\nfrom .. import model\nfrom ... import adapters\n",
        "sub/rules.py": "from ..model import Credentials\nfrom ...container import Container\n",
    })  # fmt: skip
    assert scan(src) == {
        "kitty_auth/domain/sub/__init__.py": [(3, "kitty_auth.adapters")],
        "kitty_auth/domain/sub/rules.py": [(2, "kitty_auth.container.Container")],
    }
