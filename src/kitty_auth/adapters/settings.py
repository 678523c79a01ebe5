"""Settings from the environment and `config.toml`: home folder, server URL, log level.

Order (first that is set wins): `--server` (login only, applied by the caller),
`$SPEC_KITTY_SAAS_URL`, `[sync] server_url` in `$SPEC_KITTY_HOME/config.toml`, the default.
The config file is read with the standard library's tomllib (fast to import); a config file
that cannot be read is reported, never a traceback.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kitty_auth.domain.errors import AuthError
from kitty_auth.domain.model import DEFAULT_SERVER_URL

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class ConfigFileError(AuthError):
    """config.toml exists but cannot be used."""


@dataclass(frozen=True)
class Settings:
    home: Path
    server_url: str
    log_level: str = "WARNING"

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials"

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"


def default_home(env: Mapping[str, str]) -> Path:
    raw = env.get("SPEC_KITTY_HOME", "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".spec-kitty"


def _configured_server_url(config_path: Path) -> str | None:
    try:
        with open(config_path, "rb") as fh:
            data = tomllib.load(fh)
    except (FileNotFoundError, NotADirectoryError):  # no config (a home that is a file has none either:
        return None  # the credentials file's own error then names the real problem)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise ConfigFileError(f"The config file {config_path} cannot be read; fix or remove it.") from None
    sync = data.get("sync")
    url = sync.get("server_url") if isinstance(sync, dict) else None
    if url is None:
        return None
    if not isinstance(url, str):
        raise ConfigFileError(f"[sync] server_url in {config_path} must be a string.")
    return url


def load_settings(env: Mapping[str, str] | None = None, *, home: Path | str | None = None) -> Settings:
    env = os.environ if env is None else env
    home_path = Path(home).expanduser() if home is not None else default_home(env)
    url = env.get("SPEC_KITTY_SAAS_URL", "").strip() or None
    if url is None:
        url = _configured_server_url(home_path / "config.toml") or DEFAULT_SERVER_URL
    level = env.get("SPEC_KITTY_LOG_LEVEL", "").strip().upper() or "WARNING"
    if level not in LOG_LEVELS:
        level = "WARNING"
    return Settings(home=home_path, server_url=url, log_level=level)


def configure_logging(level: str) -> None:
    """Send kitty-auth's logs (and those of the libraries under it) to stderr at ``level``."""
    root = logging.getLogger()
    if not any(getattr(h, "_kitty_auth", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._kitty_auth = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.WARNING))
