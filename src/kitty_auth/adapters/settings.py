"""Settings from the environment and `config.toml`: home folder, server URL, log level; and log set-up.

Server URL, first that is set: `--server` (login only, applied by the caller),
`$SPEC_KITTY_SAAS_URL`, `[sync] server_url` in `$SPEC_KITTY_HOME/config.toml`; when none is, a
login targets the stored session's server, else the default (``choose_login_server``, given the
stored server by its caller). The config file is read with the standard library's tomllib (fast to import), and only
when the environment names no server. A config file that cannot be read never stops a command
that does not need it (status, logout): the problem is kept in ``Settings.config_error`` and
raised only when the URL is asked for.

`$SPEC_KITTY_SAAS_TOKEN` (an access token from the environment, which wins over the stored
sessions: ``domain/token_source.py``) is read here too, stripped, and checked only when it is
asked for (``Settings.environment_token``): a value no HTTP header can carry is one error naming
the variable, never a crash of a command that does not send it, and never its value.
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from kitty_auth.adapters.token_syntax import is_token
from kitty_auth.domain.errors import AuthError, InvalidEnvironmentTokenError
from kitty_auth.domain.model import DEFAULT_SERVER_URL, normalize_server_url
from kitty_auth.domain.token_source import TOKEN_VARIABLE, EnvironmentToken

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
ENV_SERVER_URL = "SPEC_KITTY_SAAS_URL"
ENV_LOG_LEVEL = "SPEC_KITTY_LOG_LEVEL"
ENV_TOKEN = TOKEN_VARIABLE  # SPEC_KITTY_SAAS_TOKEN (domain/token_source.py)


class ConfigFileError(AuthError):
    """config.toml exists but cannot be used."""

    def __init__(self, path: Path, cause: str) -> None:
        self.path, self.cause = path, cause
        super().__init__(f"The config file {path} cannot be read ({cause}); fix or remove it.")

    @property
    def warning(self) -> str:
        """The same problem, for a command that goes on without the file."""
        return f"The config file {self.path} cannot be read ({self.cause}); it was ignored."


class Settings:
    """What the environment and config.toml say.

    ``server_url`` is the URL a login targets when nothing more specific is known (the
    configured one, else the default); it raises the ConfigFileError when config.toml had to be
    read and could not be. ``configured_server_url`` is the URL the environment or config names
    (None when neither does), with ``server_url_source`` saying which, for messages.
    """

    __slots__ = ("home", "log_level", "log_level_explicit", "server_url_source", "config_error", "warnings",
                 "_configured", "_environment_token")

    def __init__(
        self,
        home: Path,
        server_url: str | None = None,
        log_level: str = "WARNING",
        *,
        server_url_source: str | None = None,
        config_error: ConfigFileError | None = None,
        log_level_explicit: bool = False,
        warnings: tuple[str, ...] = (),
        environment_token: str | None = None,
    ) -> None:
        self.home = Path(home)
        self._environment_token = environment_token.strip() if environment_token else None
        self._configured = server_url
        self.log_level = log_level
        self.log_level_explicit = log_level_explicit
        self.server_url_source = server_url_source
        self.config_error = config_error
        self.warnings = warnings

    @property
    def configured_server_url(self) -> str | None:
        if self._configured is None and self.config_error is not None:
            raise self.config_error
        return self._configured

    @property
    def server_url(self) -> str:
        return self.configured_server_url or DEFAULT_SERVER_URL

    @property
    def environment_token_variable(self) -> str | None:
        """``SPEC_KITTY_SAAS_TOKEN`` when it is set and not blank (valid or not), for messages; else None."""
        return ENV_TOKEN if self._environment_token else None

    @property
    def environment_token(self) -> EnvironmentToken | None:
        """The access token of ``SPEC_KITTY_SAAS_TOKEN``, None when unset or blank.

        InvalidEnvironmentTokenError when no HTTP header could carry it (``token_syntax``).
        """
        if not self._environment_token:
            return None
        if not is_token(self._environment_token):
            raise InvalidEnvironmentTokenError(ENV_TOKEN)
        return EnvironmentToken(self._environment_token, ENV_TOKEN)

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials"

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    def __repr__(self) -> str:
        token = f", {ENV_TOKEN}=<set>" if self._environment_token else ""  # never its value
        return (f"Settings(home={str(self.home)!r}, server_url={self._configured!r}, "
                f"source={self.server_url_source!r}, log_level={self.log_level!r}{token})")


def choose_login_server(
    settings: Settings, explicit: str | None, stored_server: Callable[[], str | None], *,
    explicit_source: str = "--server",
) -> str:
    """The server a login talks to (CONTRACT.md, "Command line"), checked and canonical.

    ``explicit`` (``--server``, or ``AuthClient(server_url=...)``), else ``$SPEC_KITTY_SAAS_URL``
    or config.toml (a config.toml that had to be read and could not raises its ConfigFileError),
    else the stored session's server (``stored_server()``, asked only then: reading the file may
    fail), else the default. The CLI and the library both call this, so they cannot disagree.
    """
    if explicit is not None:
        return normalize_server_url(explicit, source=explicit_source, implied_https=True)
    configured = settings.configured_server_url
    if configured is not None:
        return normalize_server_url(configured, source=settings.server_url_source, implied_https=True)
    return stored_server() or DEFAULT_SERVER_URL


def default_home(env: Mapping[str, str]) -> Path:
    raw = env.get("SPEC_KITTY_HOME", "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".spec-kitty"


def _toml_cause(text: str) -> str:
    """tomllib's "Expected ']' ... (at line 1, column 6)" as "line 1, column 6: expected ']' ..."."""
    import re

    found = re.fullmatch(r"(?s)(.*?)\s*\(at (line \d+, column \d+|end of document)\)", text)
    if found is None:
        return f"not valid TOML: {text}"
    what, where = found.groups()
    return f"not valid TOML at {where}: {what[:1].lower()}{what[1:]}"


def _configured_server_url(config_path: Path) -> str | None:
    try:
        with open(config_path, "rb") as fh:
            data = tomllib.load(fh)
    except (FileNotFoundError, NotADirectoryError):  # no config (a home that is a file has none either:
        return None  # the credentials file's own error then names the real problem)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(config_path, _toml_cause(str(exc))) from None
    except UnicodeDecodeError:
        raise ConfigFileError(config_path, "not UTF-8 text") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigFileError(config_path, "not valid TOML: nested too deeply") from None
    except ValueError:  # not a TOMLDecodeError: int() refusing a number of over 4,300 digits
        raise ConfigFileError(config_path, "not valid TOML: a value out of range") from None
    except OSError as exc:
        # Windows answers "Permission denied" for a folder: say what it is, as POSIX does.
        cause = "Is a directory" if os.path.isdir(config_path) else exc.strerror or type(exc).__name__
        raise ConfigFileError(config_path, cause) from None
    sync = data.get("sync")
    url = sync.get("server_url") if isinstance(sync, dict) else None
    if url is None:
        return None
    if not isinstance(url, str):
        raise ConfigFileError(config_path, "[sync] server_url must be a string")
    return url


def load_settings(env: Mapping[str, str] | None = None, *, home: Path | str | None = None) -> Settings:
    """Read the settings; never raises for config.toml (see ``Settings.config_error``)."""
    env = os.environ if env is None else env
    home_path = Path(home).expanduser() if home is not None else default_home(env)
    warnings: list[str] = []
    raw_level = env.get(ENV_LOG_LEVEL, "").strip()
    level = raw_level.upper() or "WARNING"
    if level not in LOG_LEVELS:
        warnings.append(f"{ENV_LOG_LEVEL}={raw_level!r} is not one of DEBUG, INFO, WARNING, ERROR; using WARNING.")
        level = "WARNING"
    url = env.get(ENV_SERVER_URL, "").strip() or None
    source: str | None = ENV_SERVER_URL
    config_error: ConfigFileError | None = None
    if url is None:
        config_path = home_path / "config.toml"
        try:
            url = _configured_server_url(config_path)
        except ConfigFileError as exc:
            config_error = exc
        source = f"[sync] server_url in {config_path}" if url is not None else None
    return Settings(home_path, url, level, server_url_source=source, config_error=config_error,
                    log_level_explicit=bool(raw_level) and not warnings, warnings=tuple(warnings),
                    environment_token=env.get(ENV_TOKEN))


_HANDLER_MARK = "_kitty_auth"


def _our_handler(logger: logging.Logger) -> logging.Handler | None:
    return next((h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)), None)


def _add_stderr_handler(logger: logging.Logger) -> None:
    if _our_handler(logger) is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)


def configure_logging(settings: Settings, *, owns_process: bool) -> None:
    """Send kitty-auth's logs to stderr at ``settings.log_level`` without taking over a host's logging.

    ``owns_process`` (our console script, `python -m kitty_auth`): the root logger gets a stderr
    handler and the level, so the libraries under the adapters (httpx, httpcore, websockets; their
    token-bearing records are filtered by the adapters) log at that level too.

    Otherwise (the `auth` group mounted in a host CLI, or a library caller) only the ``kitty_auth``
    logger is touched: its level when `$SPEC_KITTY_LOG_LEVEL` is set, and a stderr handler only
    when the host has configured no root handler (if it has, our records reach its handlers).
    The root logger and the libraries' loggers stay as the host set them.
    """
    level = getattr(logging, settings.log_level, logging.WARNING)
    if owns_process:
        root = logging.getLogger()
        _add_stderr_handler(root)
        root.setLevel(level)
        return
    ours = logging.getLogger("kitty_auth")
    if settings.log_level_explicit:
        ours.setLevel(level)
    if not logging.getLogger().handlers and settings.log_level_explicit:
        _add_stderr_handler(ours)
