"""The credentials file: a CredentialRepository backed by one TOML file and one lock file.

Format (CONTRACT.md, "Files and settings")::

    [tokens]
    access = "eyJ..."
    refresh = "eyJ..."
    access_expires_at = "2026-02-03T16:45:00Z"
    refresh_expires_at = "2026-02-10T16:30:00Z"

    [user]
    username = "user@example.com"

    [server]
    url = "https://spec-kitty-dev.fly.dev"

Design choices:

* **Reading uses the standard library's ``tomllib``; writing uses ``tomlkit``.** ``auth status``
  only reads, and ``tomllib`` imports several times faster than ``tomlkit``, so ``tomlkit`` (and
  ``filelock``, only needed by writers) are imported lazily, on first write / first lock.
* **Atomic, private writes.** A save writes a temporary file ``.<name>.tmp-<random>`` in the same
  directory, created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 (and ``fchmod``-ed to
  0600, so the umask never matters), fsyncs it, then ``os.replace``-s it over the credentials
  file and fsyncs the directory (best effort; not on Windows). A reader sees the old file or the
  new one, never a mix; the file is 0600 from its first byte.
* **Temporary files left by a killed writer** are 0600 like the real file. Every writer holds
  the lock while its temporary file exists, so whoever holds the lock knows any temporary file
  it finds is stale: ``save`` and ``clear`` delete them.
* **Symlinks are never followed.** A symlink at the credentials path or the lock path makes
  ``load``/``save``/``clear``/``lock`` raise CredentialsFileError before anything is written.
  The home directory itself may be a symlink (dotfile managers do that).
* **Loose permissions.** A credentials file with any group/other permission bit is tightened to
  0600 on load (via ``fchmod`` on the already opened, non-followed descriptor) with one warning
  line on stderr, printed at most once per repository instance. The home directory is created
  0700 (``chmod``-ed after ``makedirs``, so the umask never matters). An existing home directory
  with group/other bits (seen by a write, or by a read that finds a credentials file) loses those
  bits, with one warning line, when we own it and it is not a sticky shared directory such as
  ``/tmp``; one we cannot tighten is reported with one warning line; neither is an error (the
  file's own 0600 is what protects the tokens).
* **Lock.** ``<path>.lock`` (``credentials.lock`` for the default path) with ``filelock.FileLock``
  (needs filelock >= 3.12 for ``mode`` (3.10) and ``thread_local`` (3.12)). It is re-entrant
  within a thread, excludes other threads and processes, waits at most ``lock_timeout`` seconds
  (then CredentialsLockTimeoutError), and is released by the OS when its holder dies. The lock
  file is pre-created by us with O_NOFOLLOW and mode 0600.
* **Windows.** POSIX permission bits are not checked or tightened there (they mean little),
  ``O_NOFOLLOW`` is used only where it exists (an ``lstat`` check always runs first), and the
  directory fsync is skipped.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    CredentialsFileError,
    CredentialsLockTimeoutError,
)
from kitty_auth.domain.model import Credentials, TokenPair, format_instant, parse_instant

if TYPE_CHECKING:
    from filelock import BaseFileLock

_IS_WINDOWS = os.name == "nt"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # never hang on a FIFO planted at the path
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_LOOSE_BITS = 0o077
_MAX_FILE_BYTES = 1 << 20  # a credentials file is < 4 KiB; refuse to slurp something huge


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


class TomlCredentialRepository:
    """The stored session in a TOML file at ``path`` (normally ``$SPEC_KITTY_HOME/credentials``)."""

    def __init__(self, path: Path | str, *, lock_timeout: float = 20.0) -> None:
        if not (lock_timeout >= 0 and lock_timeout != float("inf")):
            raise ValueError("lock_timeout must be a finite number of seconds >= 0")
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._lock_timeout = float(lock_timeout)
        self._filelock: BaseFileLock | None = None
        self._filelock_guard = threading.Lock()
        self._warned_loose = False
        self._warned_home = False

    # -- port ------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self._path)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def lock_path(self) -> Path:
        return self._lock_path

    def __repr__(self) -> str:
        return f"TomlCredentialRepository(path={str(self._path)!r})"

    def load(self) -> Credentials | None:
        self._refuse_symlink(self._lock_path)
        try:
            st = os.lstat(self._path)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ENOTDIR (home is a file), EACCES on the directory...
            raise self._file_error(exc) from None
        if stat.S_ISLNK(st.st_mode):
            raise CredentialsFileError(self._path, f"{self._path} is a symbolic link")
        if not stat.S_ISREG(st.st_mode):
            raise CredentialsFileError(self._path, f"{self._path} is not a regular file")
        self._tighten_home()
        try:
            fd = os.open(self._path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY | _O_NONBLOCK)
        except FileNotFoundError:
            return None  # removed since the lstat: logged out
        except OSError as exc:  # ELOOP: a symlink appeared since the lstat
            raise self._file_error(exc) from None
        try:
            self._tighten_open_file(fd)
            data = self._read_all(fd)
        except OSError as exc:
            raise self._file_error(exc) from None
        finally:
            os.close(fd)
        return self._parse(data)

    def save(self, credentials: Credentials) -> None:
        data = self._render(credentials)
        with self.lock():
            self._refuse_symlink(self._path)
            self._remove_stale_temp_files()
            self._write_atomically(data)

    def clear(self) -> bool:
        if not os.path.lexists(self._path.parent):
            return False  # nothing was ever stored; do not create the home just to say so
        with self.lock():
            self._remove_stale_temp_files()
            try:
                st = os.lstat(self._path)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise self._file_error(exc) from None
            if stat.S_ISLNK(st.st_mode):
                raise CredentialsFileError(self._path, f"{self._path} is a symbolic link")
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                return False
            except OSError as exc:  # EISDIR/EPERM for a directory, EACCES...
                raise self._file_error(exc) from None
            self._fsync_directory()
            return True

    @contextmanager
    def lock(self) -> Iterator[None]:
        self._refuse_symlink(self._path)
        self._refuse_symlink(self._lock_path)
        filelock_mod = _filelock()
        lock = self._get_filelock()
        self._ensure_home()
        self._prepare_lock_file()
        try:
            lock.acquire(timeout=self._lock_timeout)
        except filelock_mod.Timeout:
            raise CredentialsLockTimeoutError(self._lock_path, self._lock_timeout) from None
        except OSError as exc:
            raise self._file_error(exc, self._lock_path) from None
        try:
            yield
        finally:
            lock.release()

    # -- reading -------------------------------------------------------------------------

    def _tighten_open_file(self, fd: int) -> None:
        if _IS_WINDOWS:
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CredentialsFileError(self._path, f"{self._path} is not a regular file")
        if st.st_mode & _LOOSE_BITS:
            os.fchmod(fd, _FILE_MODE)  # on the descriptor: never follows a link; OSError -> caller
            if not self._warned_loose:
                self._warned_loose = True
                sys.stderr.write(
                    f"Warning: {self._path} was readable by other users; "
                    "its permissions were set to 0600.\n"
                )
                with suppress(Exception):
                    sys.stderr.flush()

    def _read_all(self, fd: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > _MAX_FILE_BYTES:
                raise CorruptCredentialsError(self._path, "file too large")
            chunks.append(chunk)

    def _parse(self, data: bytes) -> Credentials:
        import tomllib  # stdlib, fast; imported here so importing this module stays cheap

        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            raise CorruptCredentialsError(self._path, "not valid TOML") from None
        try:
            tokens = _table(doc, "tokens")
            user = _table(doc, "user")
            server = _table(doc, "server")
            pair = TokenPair(
                access=_text(tokens, "access"),
                refresh=_text(tokens, "refresh"),
                access_expires_at=parse_instant(_text(tokens, "access_expires_at")),
                refresh_expires_at=parse_instant(_text(tokens, "refresh_expires_at")),
            )
            return Credentials(
                tokens=pair, username=_text(user, "username"), server_url=_text(server, "url")
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            # The exception may quote a field value (a token); keep it out of the chain.
            raise CorruptCredentialsError(self._path, "missing or mistyped field") from None

    # -- writing -------------------------------------------------------------------------

    @staticmethod
    def _render(credentials: Credentials) -> bytes:
        import tomlkit  # lazy: only writers pay for it

        tokens = credentials.tokens
        doc = tomlkit.document()
        t = tomlkit.table()
        t.add("access", tokens.access)
        t.add("refresh", tokens.refresh)
        t.add("access_expires_at", format_instant(tokens.access_expires_at))
        t.add("refresh_expires_at", format_instant(tokens.refresh_expires_at))
        doc.add("tokens", t)
        u = tomlkit.table()
        u.add("username", credentials.username)
        doc.add("user", u)
        s = tomlkit.table()
        s.add("url", credentials.server_url)
        doc.add("server", s)
        return tomlkit.dumps(doc).encode("utf-8")

    def _write_atomically(self, data: bytes) -> None:
        directory = self._path.parent
        tmp = directory / f"{_tmp_prefix(self._path)}{secrets.token_hex(8)}"
        fd: int | None = None
        try:
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY,
                _FILE_MODE,
            )
            if not _IS_WINDOWS:
                os.fchmod(fd, _FILE_MODE)  # the umask cannot widen it, but an ACL default could
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            os.close(fd)
            fd = None
            self._refuse_symlink(self._path)
            _replace(tmp, self._path)
        except BaseException as exc:
            if fd is not None:
                with suppress(OSError):
                    os.close(fd)
            with suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise self._file_error(exc) from None
            raise
        self._fsync_directory()

    def _remove_stale_temp_files(self) -> None:
        """Delete temp files of writers that died mid-save (call with the lock held)."""
        prefix = _tmp_prefix(self._path)
        try:
            with os.scandir(self._path.parent) as entries:
                stale = [e.path for e in entries if e.name.startswith(prefix)]
        except OSError:
            return
        for name in stale:
            with suppress(OSError):
                os.unlink(name)  # unlink never follows a symlink

    def _fsync_directory(self) -> None:
        if _IS_WINDOWS:
            return
        try:
            dfd = os.open(self._path.parent, os.O_RDONLY | _O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    # -- home directory and lock file ----------------------------------------------------

    def _ensure_home(self) -> None:
        home = self._path.parent
        try:
            st = os.stat(home)
        except FileNotFoundError:
            st = None
        except OSError as exc:  # ENOTDIR: a parent is a file; EACCES...
            raise self._file_error(exc, home) from None
        if st is None:
            try:
                os.makedirs(home, mode=_DIR_MODE, exist_ok=True)
                st = os.stat(home)
                if not stat.S_ISDIR(st.st_mode):
                    raise CredentialsFileError(self._path, f"{home} is not a directory")
                if not _IS_WINDOWS:
                    os.chmod(home, _DIR_MODE)  # makedirs' mode is filtered by the umask
            except OSError as exc:
                raise self._file_error(exc, home) from None
            return
        if not stat.S_ISDIR(st.st_mode):
            raise CredentialsFileError(self._path, f"{home} is not a directory")
        self._tighten_home(st)

    def _tighten_home(self, st: os.stat_result | None = None) -> None:
        """Take group/other bits off an existing home we own, with one warning; else report it.

        Only those bits are removed: a home its owner made read-only stays read-only. A sticky
        shared directory (``/tmp``) is left alone. Never an error: the file's own 0600 is what
        protects the tokens.
        """
        if _IS_WINDOWS:
            return
        home = self._path.parent
        try:
            st = st or os.stat(home)
        except OSError:
            return
        if not stat.S_ISDIR(st.st_mode) or not st.st_mode & _LOOSE_BITS or st.st_mode & stat.S_ISVTX:
            return
        tight = stat.S_IMODE(st.st_mode) & ~_LOOSE_BITS
        done = False
        if st.st_uid == os.geteuid():
            try:
                os.chmod(home, tight)
                done = True
            except OSError:
                pass
        if not self._warned_home:
            self._warned_home = True
            sys.stderr.write(
                f"Warning: {home} was accessible by other users; its permissions were set to {tight:04o}.\n"
                if done
                else f"Warning: {home} is accessible by other users; run `chmod go-rwx {home}`.\n"
            )
            with suppress(Exception):
                sys.stderr.flush()

    def _prepare_lock_file(self) -> None:
        """Create the lock file 0600 ourselves (O_NOFOLLOW), whatever filelock's version does.

        An existing, private lock file is left alone without opening it: where ``flock`` is
        emulated with POSIX locks (NFS), closing *any* descriptor of the file would drop a lock
        this process already holds (we are called again for every nested ``lock()``).
        """
        try:
            st = os.lstat(self._lock_path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise self._file_error(exc, self._lock_path) from None
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                raise CredentialsFileError(self._path, f"{self._lock_path} is a symbolic link")
            if not stat.S_ISREG(st.st_mode):
                raise CredentialsFileError(self._path, f"{self._lock_path} is not a regular file")
            if _IS_WINDOWS or not st.st_mode & _LOOSE_BITS:
                return
            flags = os.O_RDWR | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK
        else:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK
        try:
            fd = os.open(self._lock_path, flags, _FILE_MODE)
        except FileExistsError:
            return  # another process created it just now (with the same care)
        except OSError as exc:
            raise self._file_error(exc, self._lock_path) from None
        try:
            if not _IS_WINDOWS:
                with suppress(OSError):
                    os.fchmod(fd, _FILE_MODE)
        finally:
            os.close(fd)

    def _get_filelock(self) -> BaseFileLock:
        with self._filelock_guard:
            if self._filelock is None:
                # thread_local=True (the default): re-entrant per thread, and another thread
                # of this process waits on its own descriptor like another process would.
                self._filelock = _filelock().FileLock(
                    self._lock_path, timeout=self._lock_timeout, mode=_FILE_MODE, thread_local=True
                )
            return self._filelock

    # -- helpers -------------------------------------------------------------------------

    def _refuse_symlink(self, path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._file_error(exc, path) from None
        if stat.S_ISLNK(st.st_mode):
            raise CredentialsFileError(self._path, f"{path} is a symbolic link")

    def _file_error(self, exc: OSError, where: Path | None = None) -> CredentialsFileError:
        detail = f"{where or self._path}: {exc.strerror or type(exc).__name__}"
        if exc.errno == errno.ELOOP:
            detail = f"{where or self._path} is a symbolic link"
        return CredentialsFileError(self._path, detail)


def _filelock() -> Any:
    import filelock  # lazy: `auth status` never locks, and filelock costs tens of ms to import

    return filelock


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc[name]
    if not isinstance(value, dict):
        raise TypeError(name)
    return value


def _text(table: dict[str, Any], name: str) -> str:
    value = table[name]
    if not isinstance(value, str) or not value.strip():
        raise TypeError(name)
    return value


def _replace(src: Path, dst: Path) -> None:
    """os.replace, retried briefly on Windows where a reader holding dst open blocks it."""
    attempts = 20 if _IS_WINDOWS else 1
    for attempt in range(attempts):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
