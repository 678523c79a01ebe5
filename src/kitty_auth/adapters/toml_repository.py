"""The credentials file: a CredentialRepository backed by one TOML file and one lock file.

The layout, and how a save keeps every table, key and comment that is not ours, is in
``credentials_format`` (CONTRACT.md, "Files and settings"). This module is about the file:

* **Reading uses the standard library's ``tomllib``; writing uses ``tomlkit``.** ``auth status``
  only reads, and ``tomllib`` imports several times faster than ``tomlkit``, so ``tomlkit`` (and
  ``filelock``, only needed by writers) are imported lazily, on first write / first lock.
* **Read, edit, replace, all under the lock.** ``save`` reads the current file (the same
  non-following read as ``load``) with the lock held, edits our keys into it and replaces it;
  ``clear`` removes only our keys, and the file itself when nothing else is left in it (or it
  cannot be parsed, or we may not read it). A file with no session in it (only another program's tables) loads as
  None.
* **The host's tracker store** writes the file in place (``open(path, "w")``, then ``flock`` on
  the file itself, never ``credentials.lock``). ``save`` and ``clear`` also hold that flock
  while they read and replace the file, read a file found empty or not TOML once more after a
  short wait, start again when the file changed between read and replace, and a refresh keeps
  a file it still cannot parse in ``credentials.unparsable`` (``_shared_edit``). The tracker's
  own load-edit-save is not locked across, so it can still write back an older copy of our keys.
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
* **Lock.** ``credentials.lock`` beside the file: the path the spec-kitty 2.x host locks
  (``CREDENTIALS_PATH.with_suffix(".lock")``), with the same ``filelock.FileLock`` (``flock`` on
  POSIX), so a host process and ours exclude each other. It is re-entrant within a thread,
  excludes other threads and processes, waits at most ``lock_timeout`` seconds (then
  CredentialsLockTimeoutError), and is released by the OS when its holder dies. The lock file is
  pre-created by us with O_NOFOLLOW and mode 0600 (filelock >= 3.20.1: older versions truncate
  and follow symlinks when opening it).
* **Who holds the lock.** The holder writes its PID into the lock file (through filelock's own
  descriptor: closing another one would drop an NFS-emulated lock) and empties it before
  releasing. A waiter that times out names the holder: on Linux from ``/proc/locks`` (which also
  knows host processes, which write nothing), else from that PID when the process is alive.
  filelock versions that truncate the file on open erase the PID; the message then names the
  lock alone.
* **Windows.** POSIX permission bits are not checked or tightened there (they mean little),
  ``O_NOFOLLOW`` is used only where it exists (an ``lstat`` check always runs first), the
  directory fsync is skipped, and no PID is written or checked (``os.kill(pid, 0)`` would end
  the process there). The lock is filelock's (``msvcrt.locking``), which deletes the lock file
  on release. A replace or delete that a reader's open handle blocks is retried for up to 1 s.
  The tracker's flock does not exist there. (Run by ``make test-windows``; README, "Windows".)
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    CredentialsFileError,
    CredentialsLockTimeoutError,
)
from kitty_auth.adapters import credentials_format
from kitty_auth.domain.model import Credentials

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
_PROC_LOCKS = "/proc/locks"  # Linux: who holds which lock
_UNPARSABLE = b"\xff"  # stands for a file we cannot read or parse: clear() removes it
_SETTLE = 0.2  # s: a writer that finds the file empty or not TOML waits this long, then reads again
_PASSES = 3  # read-edit-replace passes before a writer stops deferring to an in-place writer
_ASIDE_SUFFIX = ".unparsable"  # where a refresh keeps a file it could not parse, instead of dropping it


class _Changed(Exception):
    """The file changed between our read and our replace (an in-place writer): read it again."""


def lock_path_for(path: Path) -> Path:
    """The lock file for the credentials file ``path``: the spec-kitty 2.x host's rule.

    The host locks ``CREDENTIALS_PATH.with_suffix(".lock")``; for ``credentials`` that is
    ``credentials.lock``. A name that already ends in ``.lock`` keeps it and gains another.
    """
    lock = path.with_suffix(".lock") if path.name not in ("", ".", "..") else path
    return lock if lock != path else path.with_name(path.name + ".lock")


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


# How long lock() waits: well over the gateway's 8 s total request deadline, so a waiter
# outlasts the slowest legitimate refresh or login of the holder. The one value (container too).
LOCK_TIMEOUT = 20.0


class TomlCredentialRepository:
    """The stored session in a TOML file at ``path`` (normally ``$SPEC_KITTY_HOME/credentials``)."""

    def __init__(self, path: Path | str, *, lock_path: Path | str | None = None,
                 lock_timeout: float = LOCK_TIMEOUT, sleep: Callable[[float], None] = time.sleep) -> None:
        if not (lock_timeout >= 0 and lock_timeout != float("inf")):
            raise ValueError("lock_timeout must be a finite number of seconds >= 0")
        self._sleep = sleep  # waits for the tracker's flock and before a second read (tests hook it)
        self._path = Path(path)
        # The default is the rule every spec-kitty program follows; another lock is for a host that
        # chose one (spec-kitty 2.x's CredentialStore.lock_path is settable).
        self._lock_path = Path(lock_path) if lock_path is not None else lock_path_for(self._path)
        self._lock_timeout = float(lock_timeout)
        self._filelock: BaseFileLock | None = None
        self._filelock_guard = threading.Lock()
        self._warned_loose = False
        self._warned_home = False
        self._held = threading.local()  # this thread's lock() nesting depth
        self._waiting_for: str | None = None  # while lock() waits for another holder: who ("" unknown)

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

    def lock_wait(self) -> str | None:
        """While a ``lock()`` waits for another holder: that holder ("process 1234", or "" when
        unknown); otherwise None. Lets a terminal say that the wait is a local process's, not the
        server's (read from another thread)."""
        return self._waiting_for

    def load(self) -> Credentials | None:
        self._refuse_symlink(self._lock_path)
        data = self._read(tighten=True)
        if data is None:
            return None
        try:
            session = credentials_format.parse(data)
        except credentials_format.FormatError as exc:
            raise CorruptCredentialsError(self._path, str(exc)) from None
        if session is not None and getattr(self._held, "depth", 0):
            self._held.saw_session = True  # a save in this lock hold is a refresh of a good file
        return session

    def save(self, credentials: Credentials) -> None:
        _tomlkit()  # imported before the lock is taken, not while others wait
        with self.lock():
            self._refuse_symlink(self._path)
            self._remove_stale_temp_files()
            refreshing = getattr(self._held, "saw_session", False)

            def replace(existing: bytes | None, unchanged: Callable[[], bool]) -> None:
                if refreshing and existing and not _is_toml(existing):
                    self._keep_aside(existing)  # never dropped silently (see _shared_edit)
                self._write_atomically(credentials_format.render(credentials, existing), unchanged)

            self._shared_edit(self._read_for_update, replace)

    def clear(self) -> bool:
        if not os.path.lexists(self._path.parent):
            return False  # nothing was ever stored; do not create the home just to say so
        _tomlkit()
        with self.lock():
            self._remove_stale_temp_files()
            return self._shared_edit(self._read_for_clear, self._clear_read)

    def _read_for_clear(self) -> bytes | None:
        try:
            # A file we may not read (another user's, in our folder) or too large to be ours
            # is removed like any unparsable one: logout must not leave a session behind.
            return self._read(tighten=False, unreadable=_UNPARSABLE)
        except CorruptCredentialsError:
            return _UNPARSABLE

    def _clear_read(self, data: bytes | None, unchanged: Callable[[], bool]) -> bool:
        if data is None:
            return False
        try:
            if credentials_format.parse(data) is None:
                return False  # no session here; whatever else the file holds is not ours
        except credentials_format.FormatError:
            pass  # a broken session: removed like a good one
        rest = credentials_format.without_session(data)
        if rest is not None:
            self._write_atomically(rest, unchanged)
            return True
        if not unchanged():
            raise _Changed()
        try:
            _retry_sharing_violation(os.unlink, self._path)  # Windows: a reader may have it open
        except FileNotFoundError:
            return False
        except OSError as exc:  # EISDIR/EPERM for a directory, EACCES...
            raise self._file_error(exc) from None
        self._fsync_directory()
        return True

    # -- the file shared with the host's tracker store --------------------------------------

    def _shared_edit(self, read: Callable[[], bytes | None],
                     edit: Callable[[bytes | None, Callable[[], bool]], T]) -> T:
        """Read the file and replace it (``edit``) while holding the tracker's lock on it.

        The spec-kitty host's tracker store (``specify_cli/tracker/credentials.py``) rewrites this
        file in place: ``open(path, "w")`` (which truncates at once), then ``flock(LOCK_EX)`` on
        it, then the write; it never takes ``credentials.lock``. So, with our lock held:

        * we hold ``flock(LOCK_EX)`` on the file while reading and replacing it: a tracker write in
          progress is waited for (bounded like our lock), never read half done;
        * a file found empty or not TOML is read once more after ``_SETTLE`` with the flock
          released (the tracker may have truncated it and be about to write);
        * a file that changed between our read and our replace (the tracker truncated it while
          waiting for our flock) is not replaced: we let the tracker finish and start again,
          at most ``_PASSES`` times, the last time replacing it whatever happened;
        * a refresh (this lock hold loaded a good session) that still finds the file not TOML
          keeps its bytes in ``credentials.unparsable`` with a warning: never dropped silently.

        What remains (README, "The credentials file"): the tracker's own load-edit-save is not
        under any lock, so a tracker save that loaded the file before our replace writes its
        older copy of our keys back (or into the file we replaced, where it is lost).
        """
        settled = False
        for attempt in range(_PASSES):
            final = attempt == _PASSES - 1
            with self._tracker_lock() as fd:
                stamp = _stamp(fd)  # before the read: a change during it counts too
                existing = read()
                if not settled and not final and existing not in (None, _UNPARSABLE) and (
                        not existing.strip() or not _is_toml(existing)):
                    settled = True
                else:
                    try:
                        return edit(existing, (lambda: True) if final else (lambda: _stamp(fd) == stamp))
                    except _Changed:
                        pass
            self._sleep(_SETTLE)
        raise AssertionError("unreachable: the final pass always edits")

    @contextmanager
    def _tracker_lock(self) -> Iterator[int | None]:
        """flock(LOCK_EX) on the existing credentials file, as the host's tracker store takes it.

        Yields the locked descriptor, or None when there is nothing to lock (no file, one we may
        not open, not a regular file, Windows, a file system without flock): the read then
        reports whatever is wrong. Closing the descriptor releases the lock.
        """
        fd: int | None = None
        if not _IS_WINDOWS:
            with suppress(OSError):
                fd = os.open(self._path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
        try:
            if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode) and self._flock(fd):
                yield fd
            else:
                yield None
        finally:
            if fd is not None:
                os.close(fd)

    def _flock(self, fd: int) -> bool:
        import fcntl  # POSIX only; lazily, like every writer-only module here

        deadline = time.monotonic() + self._lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError:
                return False  # ENOLCK and the like: no flock here, as before this lock existed
            if time.monotonic() >= deadline:
                pid = _flock_holder_pid(self._path)
                raise CredentialsLockTimeoutError(
                    self._path, self._lock_timeout, holder=f"process {pid}" if pid else None
                )
            self._sleep(0.02)

    def _keep_aside(self, data: bytes) -> None:
        aside = self._path.with_name(self._path.name + _ASIDE_SUFFIX)
        self._write_atomically(data, target=aside)
        _warn(
            f"{self._path} could not be parsed while the refreshed session was saved; "
            f"its content was kept in {aside}."
        )

    @contextmanager
    def lock(self) -> Iterator[None]:
        self._refuse_symlink(self._path)
        self._refuse_symlink(self._lock_path)
        filelock_mod = _filelock()
        lock = self._get_filelock()
        self._ensure_home()
        self._prepare_lock_file()
        try:
            try:
                lock.acquire(timeout=0)
            except filelock_mod.Timeout:  # busy: wait, and let lock_wait() say for whom
                self._waiting_for = self._lock_holder() or ""
                try:
                    lock.acquire(timeout=self._lock_timeout)
                finally:
                    self._waiting_for = None
        except filelock_mod.Timeout:
            raise CredentialsLockTimeoutError(
                self._lock_path, self._lock_timeout, holder=self._lock_holder()
            ) from None
        except OSError as exc:
            raise self._file_error(exc, self._lock_path) from None
        depth = getattr(self._held, "depth", 0)
        self._held.depth = depth + 1
        if depth == 0:
            self._held.saw_session = False
            self._mark_holder(lock, os.getpid())
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                self._mark_holder(lock, None)
            lock.release()

    # -- reading -------------------------------------------------------------------------

    def _read(self, *, tighten: bool, unreadable: bytes | None = None) -> bytes | None:
        """The file's bytes, None when there is no file; never follows a symlink.

        ``tighten``: take group/other bits off the file (and a loose home) with a warning.
        ``unreadable``: returned for a file we may not open, instead of CredentialsFileError.
        """
        try:
            st = os.lstat(self._path)
        except FileNotFoundError:
            if _IS_WINDOWS and os.path.isfile(self._path.parent):
                # Windows says "not found" for a path through a file, where POSIX says ENOTDIR:
                # a home that is a file is an error there too, not "not logged in".
                raise CredentialsFileError(self._path, f"{self._path.parent} is not a directory") from None
            return None
        except OSError as exc:  # ENOTDIR (home is a file), EACCES on the directory...
            raise self._file_error(exc) from None
        if stat.S_ISLNK(st.st_mode):
            raise CredentialsFileError(self._path, symlink=self._path)
        if not stat.S_ISREG(st.st_mode):
            raise CredentialsFileError(self._path, f"{self._path} is not a regular file")
        if tighten:
            self._tighten_home()
        try:
            fd = os.open(self._path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY | _O_NONBLOCK)
        except FileNotFoundError:
            return None  # removed since the lstat: logged out
        except PermissionError as exc:
            if unreadable is not None:
                return unreadable
            raise self._file_error(exc) from None
        except OSError as exc:  # ELOOP: a symlink appeared since the lstat
            raise self._file_error(exc) from None
        try:
            if tighten:
                self._tighten_open_file(fd)
            elif not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CredentialsFileError(self._path, f"{self._path} is not a regular file")
            return self._read_all(fd)
        except OSError as exc:
            raise self._file_error(exc) from None
        finally:
            os.close(fd)

    def _read_for_update(self) -> bytes | None:
        """The current file for a writer (lock held); a file too large to be ours counts as none."""
        try:
            return self._read(tighten=False)
        except CorruptCredentialsError:
            return None

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
                _warn(f"{self._path} was readable by other users; its permissions were set to 0600.")

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

    # -- writing -------------------------------------------------------------------------

    def _write_atomically(self, data: bytes, unchanged: Callable[[], bool] | None = None, *,
                          target: Path | None = None) -> None:
        """Replace ``target`` (the credentials file) with ``data``; ``unchanged`` False: _Changed."""
        target = target or self._path
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
            self._refuse_symlink(target)
            if unchanged is not None and not unchanged():
                raise _Changed()
            _replace(tmp, target)
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
            _warn(
                f"{home} was accessible by other users; its permissions were set to {tight:04o}."
                if done
                else f"{home} is accessible by other users; run `chmod go-rwx {home}`."
            )

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
                raise CredentialsFileError(self._path, symlink=self._lock_path)
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

    # -- who holds the lock ---------------------------------------------------------------

    def _mark_holder(self, lock: BaseFileLock, pid: int | None) -> None:
        """Write our PID into the lock file (``None``: empty it), best effort, POSIX only.

        Through filelock's own descriptor of the locked file: opening and closing another one
        would drop the lock where ``flock`` is emulated with POSIX locks (NFS). Not under the soft
        fallback of filelock 4 (flock-less file systems), whose lock file is filelock's record.
        """
        if _IS_WINDOWS:
            return
        context = getattr(lock, "_context", None)
        fd = getattr(context, "lock_file_fd", None)
        if not isinstance(fd, int) or getattr(context, "soft_fallback", False):
            return
        with suppress(OSError):
            os.ftruncate(fd, 0)
            if pid is not None:
                os.pwrite(fd, f"{pid}\n".encode("ascii"), 0)

    def _lock_holder(self) -> str | None:
        """Who holds the lock, for the timeout message ("process 1234"); None when unknown."""
        pid = _flock_holder_pid(self._lock_path) or self._recorded_holder_pid()
        return f"process {pid}" if pid else None

    def _recorded_holder_pid(self) -> int | None:
        """The PID a holder wrote into the lock file, if that process is alive."""
        if _IS_WINDOWS:
            return None  # os.kill(pid, 0) would terminate the process there
        try:
            fd = os.open(self._lock_path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
        except OSError:
            return None
        try:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
        except OSError:
            return None
        finally:
            os.close(fd)
        if not text.isdigit() or not 0 < int(text) < 1 << 22:
            return None
        pid = int(text)
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return None  # a holder killed before it could empty the file
        except OSError:
            pass  # EPERM: alive, another user's
        return pid

    # -- helpers -------------------------------------------------------------------------

    def _refuse_symlink(self, path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._file_error(exc, path) from None
        if stat.S_ISLNK(st.st_mode):
            raise CredentialsFileError(self._path, symlink=path)

    def _file_error(self, exc: OSError, where: Path | None = None) -> CredentialsFileError:
        if exc.errno == errno.ELOOP:
            return CredentialsFileError(self._path, symlink=where or self._path)
        detail = f"{where or self._path}: {exc.strerror or type(exc).__name__}"
        return CredentialsFileError(self._path, detail)


T = TypeVar("T")


def _warn(text: str) -> None:
    """One ``Warning: ...`` line on stderr, flushed at once (a failing flush is ignored)."""
    sys.stderr.write(f"Warning: {text}\n")
    with suppress(Exception):
        sys.stderr.flush()


def _is_toml(data: bytes) -> bool:
    try:
        tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return True


def _stamp(fd: int | None) -> tuple[int, int] | None:
    """Size and modification time of the locked file: a tracker's open(path, "w") changes both."""
    if fd is None:
        return None
    st = os.fstat(fd)
    return st.st_size, st.st_mtime_ns


def _filelock() -> Any:
    import filelock  # lazy: `auth status` never locks, and filelock costs tens of ms to import

    return filelock


def _tomlkit() -> Any:
    import tomlkit  # lazy: only writers pay for it

    return tomlkit


def _flock_holder_pid(lock_path: Path) -> int | None:
    """Linux: the process holding a lock on ``lock_path``'s inode, from ``/proc/locks``."""
    if not sys.platform.startswith("linux"):
        # Linux only: elsewhere there is no /proc/locks (under Wine, a Windows program would even
        # read the Linux host's), and Windows has no os.major/os.minor (an AttributeError there made
        # every wait for a busy lock fail).
        return None
    try:
        st = os.stat(lock_path, follow_symlinks=False)
        with open(_PROC_LOCKS, encoding="ascii", errors="replace") as fh:
            lines = fh.read(1 << 20).splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    exact: list[int] = []
    same_inode: list[int] = []
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2146826 0 EOF"; a waiter's line has "->"
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or not fields[4].isdigit():
            continue
        pid = int(fields[4])
        if pid <= 0:
            continue  # in another PID namespace
        if fields[5] == device:
            exact.append(pid)
        elif fields[5].rsplit(":", 1)[-1] == str(st.st_ino):
            same_inode.append(pid)  # overlay file systems report the underlying device
    if exact:
        return exact[0]
    return same_inode[0] if len(same_inode) == 1 else None


def _replace(src: Path, dst: Path) -> None:
    """os.replace, retried briefly on Windows where a reader holding dst open blocks it."""
    _retry_sharing_violation(os.replace, src, dst)


def _retry_sharing_violation(call: Callable[..., None], *args: Path) -> None:
    """``call(*args)``; on Windows retried for up to 1 s while another process has the file open.

    Windows refuses to replace or delete a file that a reader has open (a sharing violation,
    PermissionError), where POSIX lets the reader keep the old inode.
    """
    attempts = 20 if _IS_WINDOWS else 1
    for attempt in range(attempts):
        try:
            call(*args)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
