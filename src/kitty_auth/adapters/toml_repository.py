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
  pre-created by us with O_NOFOLLOW and mode 0600 (filelock >= 3.30, pyproject's bound: versions
  before 3.20.1 follow symlinks when opening it, and before 3.30 a waiter truncates it).
* **Who holds the lock.** The holder writes its PID into the lock file (through filelock's own
  descriptor: closing another one would drop an NFS-emulated lock) and empties it before
  releasing. A waiter that times out names the holder: on Linux from ``/proc/locks`` (which also
  knows host processes, which write nothing), else from that PID when the process is alive.
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
import stat
import sys
import threading
import time
import tomllib
from datetime import UTC, datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from kitty_auth.adapters import credentials_format
from kitty_auth.domain.accounts import StoredSession, is_account, same_account
from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    CredentialsFileEditError,
    CredentialsFileError,
    CredentialsLockTimeoutError,
)
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
_UNUSABLE = object()  # a file we may not read, or too large to be ours: moved aside by a writer
_KEEP = object()  # what a build returns to leave the file as it is
_REMOVED = object()  # _rewrite moved an unusable file aside instead of building
_SETTLE = 0.2  # s: a writer that finds the file empty or not TOML waits this long, then reads again
_PASSES = 3  # read-edit-replace passes before a writer stops deferring to an in-place writer
_ASIDE_SUFFIX = ".unparsable"  # credentials.unparsable.N: files we could not parse, kept instead of dropped
_ASIDE_KEEP = 3  # how many of them are kept (the oldest go)


class LockProbe(NamedTuple):
    """The lock as ``probe_lock`` found it (see there)."""

    held: bool | None
    holder_pid: int | None
    recorded_pid: int | None
    recorded_alive: bool | None


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
            return credentials_format.parse(data)
        except credentials_format.FormatError as exc:
            raise CorruptCredentialsError(self._path, str(exc)) from None

    def save(self, credentials: Credentials) -> None:
        """Store ``credentials`` as the active session; an active session of another account
        (another server or user) is kept among the other sessions, most recent first."""

        def build(existing: bytes | None) -> bytes | None | object:
            if existing is None:
                return credentials_format.render(credentials, None)
            active = _active_or_none(existing)
            others = credentials_format.parse_others(existing)
            kept = [o for o in others if not _holds(o, credentials)]
            if active is not None and not same_account(active, credentials):
                return credentials_format.render(credentials, existing, [_demoted(active), *kept])
            if len(kept) != len(others):  # this account was stored among the others: now it is active
                return credentials_format.render(credentials, existing, kept)
            return credentials_format.render(credentials, existing)

        self._rewrite(build)

    def clear(self, promote: bool = False) -> bool:
        """Remove the active session; with ``promote``, the most recently used other one (if any)
        becomes active (`auth logout`), else the others stay as they are and none is active."""
        if not os.path.lexists(self._path.parent):
            return False  # nothing was ever stored; do not create the home just to say so
        return self._rewrite(lambda existing: _without_active(existing, promote), unusable="remove") is not _KEEP

    # -- several sessions -------------------------------------------------------------------

    def sessions(self, *, tighten: bool = True) -> list[StoredSession]:
        """Every stored session: the active one first, then the others, most recently used first.

        CorruptCredentialsError when the file cannot be parsed (as ``load``); an entry among the
        others that cannot be read is left out here (and kept in the file). ``tighten=False``
        (`auth doctor`, which reports loose permissions instead) changes nothing on disk.
        """
        self._refuse_symlink(self._lock_path)
        data = self._read(tighten=tighten)
        if data is None:
            return []
        try:
            active = credentials_format.parse(data)
            others = credentials_format.parse_others(data)
        except credentials_format.FormatError as exc:
            raise CorruptCredentialsError(self._path, str(exc)) from None
        found = [StoredSession(active, active=True)] if active is not None else []
        return found + [StoredSession(o.credentials, active=False, last_used=o.last_used)
                        for o in others if o.credentials is not None]

    def for_account(self, server_url: str, username: str) -> AccountRepository:
        """A CredentialRepository of one stored account, active or not (refreshed where it is)."""
        return AccountRepository(self, server_url, username)

    def activate(self, server_url: str, username: str) -> Credentials | None:
        """Make the stored session of that account the active one (the active one joins the others).

        Returns it; None when no such session is stored (nothing changes).
        """
        chosen: list[Credentials] = []

        def build(existing: bytes | None) -> bytes | None | object:
            chosen.clear()
            if existing is None:
                return _KEEP
            active = _active_or_none(existing)
            if active is not None and is_account(active, server_url, username):
                chosen.append(active)
                return _KEEP
            others = credentials_format.parse_others(existing)
            target = next((o for o in others if o.credentials is not None
                           and is_account(o.credentials, server_url, username)), None)
            if target is None or target.credentials is None:
                return _KEEP
            chosen.append(target.credentials)
            rest = [o for o in others if o is not target]
            demoted = [_demoted(active)] if active is not None else []
            return credentials_format.render(target.credentials, existing, [*demoted, *rest])

        self._rewrite(build, unusable="leave")
        return chosen[0] if chosen else None

    def clear_all(self) -> list[Credentials]:
        """Remove every stored session; returns those that could be read (to revoke them)."""
        removed: list[Credentials] = []

        def build(existing: bytes | None) -> bytes | None | object:
            removed.clear()
            if existing is None:
                return _KEEP
            active = _active_or_none(existing)
            others = credentials_format.parse_others(existing)
            removed.extend([active] if active is not None else [])
            removed.extend(o.credentials for o in others if o.credentials is not None)
            if active is None and not others and not _broken_active(existing):
                return _KEEP
            return credentials_format.without_session(existing, [])

        if os.path.lexists(self._path.parent):
            self._rewrite(build, unusable="remove")
        return removed

    # -- one read-edit-replace under the lock ---------------------------------------------

    def _rewrite(self, build: Callable[[bytes | None], bytes | None | object], *,
                 unusable: str = "replace") -> object:
        """Under the lock (and the tracker's flock): read the file, ``build`` its new text, replace it.

        ``build`` gets the file's bytes (valid TOML) or None when there is none, and returns the new
        bytes, None to remove the file, or ``_KEEP`` to leave it. A file that is not TOML (or too
        large, or one we may not read) is never dropped: ``unusable`` says what happens to it:
        "replace" keeps its bytes aside (``credentials.unparsable.N``) and builds as if there were
        no file; "remove" moves it aside (``_REMOVED`` is returned); "leave" keeps it (``_KEEP``).
        Returns what ``build`` returned.
        """
        _tomlkit()  # imported before the lock is taken, not while others wait
        with self.lock():
            self._refuse_symlink(self._path)
            self._remove_stale_temp_files()

            def edit(existing: bytes | None | object, unchanged: Callable[[], bool]) -> object:
                broken = existing is _UNUSABLE or (isinstance(existing, bytes) and not _is_toml(existing))
                if broken and unusable == "leave":
                    return _KEEP
                if broken and (unusable == "remove" or existing is _UNUSABLE):
                    if not unchanged():
                        raise _Changed()
                    self._move_aside()
                    if unusable == "remove":
                        return _REMOVED
                    existing = None
                elif broken:
                    assert isinstance(existing, bytes)
                    self._keep_aside(existing)
                    existing = None
                assert existing is None or isinstance(existing, bytes)
                try:
                    result = build(existing)
                except credentials_format.EditRefusedError as exc:
                    raise CredentialsFileEditError(self._path, str(exc)) from None
                if isinstance(result, bytes):
                    self._write_atomically(result, unchanged)
                elif result is None and os.path.lexists(self._path):
                    if not unchanged():
                        raise _Changed()
                    self._unlink()
                return result

            return self._shared_edit(self._read_for_update, edit)

    def _read_for_update(self) -> bytes | None | object:
        """The current file for a writer (lock held); ``_UNUSABLE`` for one we may not read or too
        large to be ours (moved aside, never dropped)."""
        try:
            return self._read(tighten=False, unreadable=_UNUSABLE)
        except CorruptCredentialsError:  # too large
            return _UNUSABLE

    def _unlink(self) -> None:
        try:
            _retry_sharing_violation(os.unlink, self._path)  # Windows: a reader may have it open
        except FileNotFoundError:
            return
        except OSError as exc:  # EISDIR/EPERM for a directory, EACCES...
            raise self._file_error(exc) from None
        self._fsync_directory()

    # -- files kept aside ---------------------------------------------------------------------

    def _aside_paths(self) -> list[tuple[int, Path]]:
        prefix = self._path.name + _ASIDE_SUFFIX + "."
        found: list[tuple[int, Path]] = []
        with suppress(OSError), os.scandir(self._path.parent) as entries:
            for entry in entries:
                number = entry.name[len(prefix):] if entry.name.startswith(prefix) else ""
                if number.isdigit() and len(number) < 10:
                    found.append((int(number), Path(entry.path)))
        return sorted(found)

    def _next_aside(self) -> Iterator[Path]:
        """Fresh names ``credentials.unparsable.N``, N above every existing one."""
        existing = self._aside_paths()
        first = existing[-1][0] + 1 if existing else 1
        for number in range(first, first + 8):
            yield self._path.with_name(f"{self._path.name}{_ASIDE_SUFFIX}.{number}")

    def _prune_asides(self) -> None:
        for _, old in self._aside_paths()[:-_ASIDE_KEEP]:
            with suppress(OSError):
                os.unlink(old)  # unlink never follows a symlink

    def _keep_aside(self, data: bytes) -> None:
        """Copy an unparsable file's bytes to ``credentials.unparsable.N`` (0600, created new: never
        through a symlink) before it is replaced. Never raises: a failing copy must not cost the
        session being saved (a refresh's rotated tokens); it is reported instead."""
        for aside in self._next_aside():
            try:
                fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY,
                             _FILE_MODE)
            except FileExistsError:
                continue  # a name taken meanwhile (or a planted link): the next number
            except OSError as exc:
                _warn(f"{self._path} could not be parsed and could not be kept aside "
                      f"({exc.strerror or type(exc).__name__}); it was replaced.")
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                _warn(f"{self._path} could not be parsed and could not be kept aside "
                      f"({exc.strerror or type(exc).__name__}); it was replaced.")
                return
            finally:
                os.close(fd)
            self._prune_asides()
            _warn(f"{self._path} could not be parsed; its content was kept in {aside}.")
            return
        _warn(f"{self._path} could not be parsed and could not be kept aside; it was replaced.")

    def _move_aside(self) -> None:
        """Rename a file we may not read (or too large to be ours) to ``credentials.unparsable.N``;
        rename moves the entry itself, never a link's target. Unlinked when even that fails."""
        for aside in self._next_aside():
            if os.path.lexists(aside):
                continue
            try:
                os.rename(self._path, aside)
            except FileNotFoundError:
                return
            except OSError:
                break
            self._prune_asides()
            _warn(f"{self._path} could not be read as a credentials file; it was moved to {aside}.")
            return
        self._unlink()

    # -- the file shared with the host's tracker store --------------------------------------

    def _shared_edit(self, read: Callable[[], bytes | None | object],
                     edit: Callable[[bytes | None | object, Callable[[], bool]], T]) -> T:
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
        * a file that is still not TOML is kept aside (``_rewrite``): never dropped silently.

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
                if not settled and not final and isinstance(existing, bytes) and (
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
        import secrets  # (hashlib, hmac, random): only a writer needs it, not `status` or a fresh `auth token`

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
        for name in self._temporary_files():
            with suppress(OSError):
                os.unlink(name)  # unlink never follows a symlink

    def _temporary_files(self) -> list[Path]:
        prefix = _tmp_prefix(self._path)
        try:
            with os.scandir(self._path.parent) as entries:
                return sorted(Path(e.path) for e in entries if e.name.startswith(prefix))
        except OSError:
            return []

    def leftover_files(self) -> tuple[list[Path], list[Path]]:
        """What saves leave beside the file: temporary files of a save that was killed (the next
        save deletes them), and the unparsable files kept aside (``credentials.unparsable.N``,
        kept for the user to look at), oldest first. Read-only (`auth doctor`)."""
        return self._temporary_files(), [path for _, path in self._aside_paths()]

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

    def probe_lock(self) -> LockProbe:
        """The lock right now, for `auth doctor`: never waits for it, never creates or changes the file.

        ``held`` comes from a non-blocking shared ``flock`` on a descriptor of our own (taken and
        dropped at once: a waiting writer retries within its poll interval); None where that cannot
        tell (Windows, no lock file, a file system without flock). The holder is named as in the
        timeout message (``/proc/locks``, else the PID the holder wrote); the PID written in the
        file is reported too, with whether that process still runs (one killed while holding the
        lock leaves its PID behind; the OS released its lock).
        """
        recorded = self._recorded_pid()
        recorded_alive = _pid_alive(recorded) if recorded is not None else None
        held = None if _IS_WINDOWS else self._lock_is_held()
        holder: int | None = None
        if held:
            holder = _flock_holder_pid(self._lock_path) or (recorded if recorded_alive else None)
        return LockProbe(held, holder, recorded, recorded_alive)

    def _lock_is_held(self) -> bool | None:
        import fcntl  # POSIX only (the caller checked)

        try:
            fd = os.open(self._lock_path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None  # ENOLCK and the like: no flock here
        finally:
            os.close(fd)  # also drops our shared lock
        return False

    def _recorded_holder_pid(self) -> int | None:
        """The PID a holder wrote into the lock file, if that process is alive."""
        pid = self._recorded_pid()
        return pid if pid is not None and _pid_alive(pid) else None

    def _recorded_pid(self) -> int | None:
        """The PID written in the lock file (its holder's, or a killed holder's), alive or not."""
        if _IS_WINDOWS:
            return None  # and os.kill(pid, 0) would terminate the process there
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
        return int(text)

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


class AccountRepository:
    """One stored account (a server and a user), wherever it is in the file: the active session or
    one of the others. A CredentialRepository, so ``EnsureFreshToken`` refreshes an account that is
    not active without making it active (`auth token --user NAME`), and a late refresh answer lands
    on the account it belongs to even after a `switch`."""

    def __init__(self, repo: TomlCredentialRepository, server_url: str, username: str) -> None:
        self._repo, self._server, self._user = repo, server_url, username

    @property
    def location(self) -> str:
        return self._repo.location

    def lock(self) -> Any:
        return self._repo.lock()

    def lock_wait(self) -> str | None:
        return self._repo.lock_wait()

    def for_account(self, server_url: str, username: str) -> AccountRepository:
        return self._repo.for_account(server_url, username)

    def _mine(self, credentials: Credentials | None) -> bool:
        return credentials is not None and is_account(credentials, self._server, self._user)

    def load(self) -> Credentials | None:
        return next((s.credentials for s in self._repo.sessions() if self._mine(s.credentials)), None)

    def save(self, credentials: Credentials) -> None:
        """Store the account's new tokens where it is (the active stays active, the others stay
        others, moved to the front as the most recently used)."""

        def build(existing: bytes | None) -> bytes | None | object:
            if existing is None:
                return credentials_format.render(credentials, None)
            active = _active_or_none(existing)
            others = credentials_format.parse_others(existing)
            kept = [o for o in others if not (o.credentials and self._mine(o.credentials))]
            if active is not None and not self._mine(active):  # stays one of the others, now the most recent
                return credentials_format.render(active, existing, [_demoted(credentials), *kept])
            return credentials_format.render(credentials, existing, kept if len(kept) != len(others) else None)

        self._repo._rewrite(build)

    def clear(self, promote: bool = False) -> bool:
        """Remove this account's session (if it is the active one, as ``TomlCredentialRepository.clear``)."""

        def build(existing: bytes | None) -> bytes | None | object:
            if existing is None:
                return _KEEP
            active = _active_or_none(existing)
            if active is not None and self._mine(active):
                return _without_active(existing, promote)
            others = credentials_format.parse_others(existing)
            kept = [o for o in others if not (o.credentials and self._mine(o.credentials))]
            if len(kept) == len(others):
                return _KEEP
            if active is None:
                return credentials_format.without_session(existing, kept)
            return credentials_format.render(active, existing, kept)

        return self._repo._rewrite(build, unusable="leave") is not _KEEP


def _active_or_none(data: bytes) -> Credentials | None:
    """The active session of a file that parses as TOML; a broken one counts as none (it is replaced)."""
    try:
        return credentials_format.parse(data)
    except credentials_format.FormatError:
        return None


def _broken_active(data: bytes) -> bool:
    try:
        credentials_format.parse(data)
    except credentials_format.FormatError:
        return True
    return False


def _holds(other: credentials_format.OtherSession, credentials: Credentials) -> bool:
    return other.credentials is not None and same_account(other.credentials, credentials)


def _demoted(credentials: Credentials) -> credentials_format.OtherSession:
    """A session that stops being the active one: first among the others, used just now."""
    return credentials_format.OtherSession(credentials, datetime.now(UTC))


def _without_active(existing: bytes | None, promote: bool) -> bytes | None | object:
    """The file without its active session (with ``promote``, the most recently used other one takes
    its place); nothing at all left of ours or anyone's removes the file. ``_KEEP`` when none was stored."""
    if existing is None:
        return _KEEP
    active = _active_or_none(existing)
    if active is None and not _broken_active(existing):
        return _KEEP  # no session here; whatever else the file holds is not ours
    others = credentials_format.parse_others(existing)
    successor = next((o for o in others if o.credentials is not None), None) if promote else None
    if successor is not None and successor.credentials is not None:
        return credentials_format.render(successor.credentials, existing, [o for o in others if o is not successor])
    return credentials_format.without_session(existing)


def _warn(text: str) -> None:
    """One ``Warning: ...`` line on stderr, flushed at once (a failing flush is ignored)."""
    sys.stderr.write(f"Warning: {text}\n")
    with suppress(Exception):
        sys.stderr.flush()


def _is_toml(data: bytes) -> bool:
    try:
        tomllib.loads(data.decode("utf-8"))
    except credentials_format.NOT_TOML:  # not UTF-8 or TOML, a 4,300-digit integer, deep nesting
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


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (POSIX: signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False  # e.g. a holder killed before it could empty the lock file
    except OSError:
        pass  # EPERM: alive, another user's
    return True


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
