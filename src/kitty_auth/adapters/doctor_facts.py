"""What `auth doctor` finds on this machine: the home, the credentials file, config.toml, the lock, TLS trust.

The ``DoctorFacts`` port (``domain/doctor.py``), read-only: nothing is created, tightened or
waited for. The file is read by the repository itself (``sessions(tighten=False)``), the lock is
probed by it (``probe_lock``), the server URL is chosen by ``choose_login_server`` as login does,
and trust is described by ``tls_trust.inspect_trust``: the doctor reports what the commands will
meet, through the same code.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from kitty_auth.adapters.settings import ENV_SERVER_URL, Settings, choose_login_server, load_settings
from kitty_auth.adapters.tls_trust import inspect_trust
from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.doctor import (
    TOKEN_VARIABLE,
    ConfigFacts,
    CredentialsFacts,
    LocalFacts,
    LockFacts,
    PathFacts,
    PathKind,
)
from kitty_auth.domain.errors import AuthError, CorruptCredentialsError, CredentialsFileError

_IS_WINDOWS = os.name == "nt"


def _owner_name(uid: int) -> str:
    try:
        import pwd  # POSIX only

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def path_facts(path: Path, *, follow: bool) -> PathFacts:
    """``path`` as found; ``follow``: a symlink is looked through (the home may be one), else reported."""
    shown = str(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return PathFacts(shown, PathKind.MISSING)
    except OSError as exc:
        return PathFacts(shown, PathKind.MISSING, error=exc.strerror or type(exc).__name__)
    target: str | None = None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if not follow:
            return PathFacts(shown, PathKind.SYMLINK, link_target=target)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return PathFacts(shown, PathKind.MISSING, link_target=target)
        except OSError as exc:
            return PathFacts(shown, PathKind.MISSING, link_target=target, error=exc.strerror or type(exc).__name__)
    if stat.S_ISDIR(st.st_mode):
        kind = PathKind.DIRECTORY
    elif stat.S_ISREG(st.st_mode):
        kind = PathKind.FILE
    else:
        kind = PathKind.OTHER
    if _IS_WINDOWS:  # POSIX permission bits and owners mean little there
        return PathFacts(shown, kind, link_target=target)
    access = os.W_OK | (os.X_OK if kind is PathKind.DIRECTORY else 0)
    return PathFacts(
        shown, kind, mode=stat.S_IMODE(st.st_mode), owner=_owner_name(st.st_uid), mine=st.st_uid == os.geteuid(),
        writable=os.access(path, access), sticky=bool(st.st_mode & stat.S_ISVTX), link_target=target,
    )


class FileSystemDoctorFacts:
    """The ``DoctorFacts`` of this machine, for the repository and settings the commands use."""

    def __init__(self, settings: Settings, repository: TomlCredentialRepository,
                 env: Mapping[str, str] | None = None) -> None:
        self._settings, self._repo = settings, repository
        self._env = os.environ if env is None else env

    def local(self) -> LocalFacts:
        credentials = self._credentials()
        active = next((s.credentials.server_url for s in credentials.sessions if s.active), None)
        return LocalFacts(
            home=path_facts(self._repo.path.parent, follow=True),
            credentials=credentials,
            config=self._config(active),
            lock=self._lock(),
            trust=inspect_trust(),
            token_in_env=bool(self._env.get(TOKEN_VARIABLE, "").strip()),
        )

    def _credentials(self) -> CredentialsFacts:
        file = path_facts(self._repo.path, follow=False)
        temporary, aside = self._repo.leftover_files()
        leftovers = {"temporary_files": tuple(map(str, temporary)), "kept_aside": tuple(map(str, aside))}
        if file.kind is not PathKind.FILE:
            return CredentialsFacts(file, **leftovers)
        try:
            sessions = tuple(self._repo.sessions(tighten=False))
        except CorruptCredentialsError as exc:
            return CredentialsFacts(file, parse_error=exc.detail or "not a credentials file", **leftovers)
        except CredentialsFileError as exc:
            return CredentialsFacts(file, read_error=exc.detail or str(exc), **leftovers)
        return CredentialsFacts(file, sessions, **leftovers)

    def _config(self, active_server: str | None) -> ConfigFacts:
        settings = self._settings
        path = settings.config_path
        env_url = self._env.get(ENV_SERVER_URL, "").strip() or None
        # config.toml as it would be read without $SPEC_KITTY_SAAS_URL (which spares commands reading it)
        from_file = load_settings({k: v for k, v in self._env.items() if k != ENV_SERVER_URL}, home=settings.home)
        error = from_file.config_error
        configured = from_file.configured_server_url if error is None else None
        asked: list[bool] = []

        def stored_server() -> str | None:
            asked.append(True)
            return active_server

        try:
            url: str | None = choose_login_server(settings, None, stored_server)
            login_error = None
        except AuthError as exc:
            url, login_error = None, str(exc)
        if not asked:
            source = settings.server_url_source or (str(path) if settings.config_error is not None else None)
        else:
            source = "the active stored session" if active_server else "the default"
        return ConfigFacts(
            path=str(path), exists=os.path.lexists(path), error=None if error is None else error.cause,
            configured_url=configured, env_url=env_url, login_server=url, login_server_source=source,
            login_server_error=login_error,
        )

    def _lock(self) -> LockFacts:
        file = path_facts(self._repo.lock_path, follow=False)
        if file.kind is not PathKind.FILE:
            return LockFacts(file)
        probe = self._repo.probe_lock()
        return LockFacts(file, held=probe.held, holder_pid=probe.holder_pid, recorded_pid=probe.recorded_pid,
                         recorded_alive=probe.recorded_alive)
