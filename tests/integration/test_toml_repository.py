"""TomlCredentialRepository against a real filesystem and real processes.

The exact file text, permissions whatever the umask, corrupt files, symlinks, a lock held (or
abandoned by a killed process) elsewhere, and a writer SIGKILLed mid-save.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kitty_auth.adapters import toml_repository
from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    CredentialsFileEditError,
    CredentialsFileError,
    CredentialsLockTimeoutError,
)
from kitty_auth.domain.model import (
    Credentials,
    Identity,
    IssuedTokens,
    LoginMethod,
    OAuthClient,
    Team,
    TokenPair,
    format_instant,
)
from kitty_auth.testing import make_jwt

# Each skip below names why (tests/portability.py); the Windows lane runs this file under Wine.
from portability import (
    UNDER_WINE,
    WINDOWS,
    needs_symlinks,
    posix_modes,
    posix_pid_in_lock,
    posix_tracker_flock,
)

# filelock removes its lock file on release on Windows; it stays (empty) on POSIX.
LOCK_FILE_LEFT = [] if WINDOWS else ["credentials.lock"]


def _permission_bits_enforced() -> bool:
    """False for root with CAP_DAC_OVERRIDE (the usual container), where mode 000 reads fine."""
    if os.name == "nt":
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "probe"
        probe.write_text("x")
        probe.chmod(0o000)
        try:
            probe.read_text()
        except PermissionError:
            return True
        return False


# Dropped from the bounding set, root keeps uid 0 (so it still owns the test's files and reaches the
# interpreter under /root) but loses the capabilities that ignore permission bits.
_DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]

_PROOF = textwrap.dedent(
    """
    import os, sys, tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "probe")
        with open(p, "w") as fh:
            fh.write("x")
        os.chmod(p, 0)
        try:
            open(p).read()
        except PermissionError:
            pass
        else:
            sys.exit("permission bits are not enforced in the child")
    """
)


def run_with_permission_bits_enforced(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter for which permission bits apply; return its stdout.

    As a normal user that is any interpreter. As root (the usual container), the child runs without
    CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (setpriv), so it is refused what an ordinary user is
    refused. The child first proves it: it must fail to read a mode-000 file.
    """
    prefix: list[str] = []
    if not _permission_bits_enforced():
        if shutil.which("setpriv") is None:
            pytest.fail("running as root: needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE for this check")
        prefix = _DROP_DAC
    result = subprocess.run([*prefix, sys.executable, "-c", _PROOF + textwrap.dedent(code), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


ISSUED = datetime(2026, 2, 3, 16, 30, 0, tzinfo=UTC)
FILE_MESSAGE = "Cannot access credentials file"


def make_credentials(username: str = "user@example.com", server: str = "https://spec-kitty-dev.fly.dev") -> Credentials:
    return Credentials(
        tokens=TokenPair(
            access=make_jwt(iat=ISSUED, lifetime=timedelta(minutes=15), kind="access"),
            refresh=make_jwt(iat=ISSUED, lifetime=timedelta(days=7), kind="refresh"),
            access_expires_at=ISSUED + timedelta(minutes=15),
            refresh_expires_at=ISSUED + timedelta(days=7),
        ),
        username=username,
        server_url=server,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "spec-kitty-home"


@pytest.fixture
def path(home: Path) -> Path:
    return home / "credentials"


@pytest.fixture
def repo(path: Path) -> TomlCredentialRepository:
    return TomlCredentialRepository(path, lock_timeout=2.0)


def mode_of(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def temp_files(home: Path) -> list[Path]:
    return sorted(home.glob(".credentials.tmp-*"))


# -- format ------------------------------------------------------------------------------


def test_file_text_is_exactly_the_contract_format(repo, path) -> None:
    creds = make_credentials()
    repo.save(creds)
    assert path.read_text(encoding="utf-8") == (
        "[tokens]\n"
        f'access = "{creds.tokens.access}"\n'
        f'refresh = "{creds.tokens.refresh}"\n'
        'access_expires_at = "2026-02-03T16:45:00Z"\n'
        'refresh_expires_at = "2026-02-10T16:30:00Z"\n'
        "\n"
        "[user]\n"
        'username = "user@example.com"\n'
        "\n"
        "[server]\n"
        'url = "https://spec-kitty-dev.fly.dev"\n'
    )


def test_the_contract_example_file_loads(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_text(VALID)  # the contract's example, verbatim
    path.chmod(0o600)
    loaded = repo.load()
    assert loaded is not None
    assert (loaded.tokens.access, loaded.tokens.refresh) == ("eyJ.a.b", "eyJ.c.d")
    assert loaded.tokens.access_expires_at == datetime(2026, 2, 3, 16, 45, tzinfo=UTC)
    assert loaded.tokens.refresh_expires_at == datetime(2026, 2, 10, 16, 30, tzinfo=UTC)
    assert (loaded.username, loaded.server_url) == ("user@example.com", "https://spec-kitty-dev.fly.dev")


def test_awkward_strings_are_escaped_and_round_trip(repo, path) -> None:
    creds = make_credentials(username='Zoë "the cat" \\ O\'Brien\n', server="https://h.example/base/")
    repo.save(creds)
    assert tomllib.loads(path.read_text(encoding="utf-8"))["user"]["username"] == creds.username
    assert repo.load() == creds


# -- permissions -------------------------------------------------------------------------


@posix_modes
def test_file_is_0600_lock_0600_and_home_0700_even_with_umask_000(repo, path, home) -> None:
    old = os.umask(0o000)
    try:
        repo.save(make_credentials())
    finally:
        os.umask(old)
    assert mode_of(home) == 0o700
    assert mode_of(path) == 0o600
    assert mode_of(path.with_name("credentials.lock")) == 0o600


@posix_modes
def test_loose_existing_lock_file_is_tightened_to_0600(repo, home) -> None:
    home.mkdir(mode=0o700)
    lock_path = home / "credentials.lock"
    lock_path.write_text("")
    lock_path.chmod(0o666)
    with repo.lock():
        assert mode_of(lock_path) == 0o600


@posix_modes
def test_loose_existing_home_is_tightened_to_0700(repo, home) -> None:
    home.mkdir()
    home.chmod(0o755)
    repo.save(make_credentials())
    assert mode_of(home) == 0o700


def test_no_temporary_files_are_left_behind(repo, home) -> None:
    for name in ("a@example.com", "b@example.com", "c@example.com"):
        repo.save(make_credentials(name))
    repo.clear()
    repo.save(make_credentials())
    assert sorted(p.name for p in home.iterdir()) == ["credentials", *LOCK_FILE_LEFT]


def test_a_reader_holding_the_file_open_for_a_moment_does_not_fail_a_save_or_a_clear(repo, path) -> None:
    """Windows refuses to replace or delete a file that a reader has open (a sharing violation);
    the writer retries for a bounded second instead of failing. POSIX never refuses."""
    repo.save(make_credentials("first@example.com"))
    for action in (lambda: repo.save(make_credentials("first@example.com")), repo.clear):
        reader = open(path, "rb")  # noqa: SIM115 - closed by the timer, as another process would
        closer = threading.Timer(0.3, reader.close)
        closer.start()
        try:
            action()
        finally:
            closer.join()
            reader.close()
    assert not path.exists()


def test_stale_temp_file_of_a_dead_writer_is_removed_by_the_next_save(repo, home) -> None:
    repo.save(make_credentials())
    stale = home / ".credentials.tmp-deadbeef"
    stale.write_text("half a file")
    repo.save(make_credentials("b@example.com"))
    assert not stale.exists()


@posix_modes
def test_loose_file_is_tightened_with_exactly_one_warning(repo, path, capfd) -> None:
    creds = make_credentials()
    repo.save(creds)
    path.chmod(0o644)
    reader = TomlCredentialRepository(path)
    capfd.readouterr()

    assert reader.load() == creds
    assert mode_of(path) == 0o600
    out, err = capfd.readouterr()
    assert out == ""
    assert err == f"Warning: {path} was readable by other users; its permissions were set to 0600.\n"

    path.chmod(0o640)  # loosened again: tightened again, but the warning is not repeated
    assert reader.load() == creds
    assert mode_of(path) == 0o600
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@posix_modes
def test_private_file_gives_no_warning(repo, path, capfd) -> None:
    repo.save(make_credentials())
    capfd.readouterr()
    TomlCredentialRepository(path).load()
    assert capfd.readouterr() == ("", "")


@posix_modes
def test_unreadable_file_is_a_credentials_file_error(repo, path) -> None:
    repo.save(make_credentials())
    path.chmod(0o000)
    try:
        outcome = run_with_permission_bits_enforced(
            """
            import sys
            from kitty_auth.adapters.toml_repository import TomlCredentialRepository
            from kitty_auth.domain.errors import CorruptCredentialsError, CredentialsFileError
            try:
                TomlCredentialRepository(sys.argv[1]).load()
            except CorruptCredentialsError:
                print("corrupt")
            except CredentialsFileError as exc:
                print("file error:", exc)
            else:
                print("loaded")
            """,
            str(path),
        )
    finally:
        path.chmod(0o600)
    assert outcome.startswith(f"file error: {FILE_MESSAGE}. Check permissions."), outcome


@posix_modes
def test_clear_removes_a_file_it_may_not_read(repo, path) -> None:
    """Logout must not leave a session behind because the file is another user's (in our folder)."""
    repo.save(make_credentials())
    path.chmod(0o000)
    outcome = run_with_permission_bits_enforced(
        """
        import sys
        from kitty_auth.adapters.toml_repository import TomlCredentialRepository
        print(TomlCredentialRepository(sys.argv[1], lock_timeout=2.0).clear())
        """,
        str(path),
    )
    assert outcome == "True"
    assert not path.exists()
    assert path.with_name("credentials.unparsable.1").exists()  # moved aside, not deleted


@posix_modes
def test_unwritable_home_is_a_credentials_file_error(repo, path, home) -> None:
    repo.save(make_credentials())
    before = path.read_bytes()
    home.chmod(0o500)
    try:
        outcome = run_with_permission_bits_enforced(
            """
            import dataclasses, sys
            from kitty_auth.adapters.toml_repository import TomlCredentialRepository
            from kitty_auth.domain.errors import CredentialsFileError
            repo = TomlCredentialRepository(sys.argv[1], lock_timeout=2.0)
            try:
                repo.save(dataclasses.replace(repo.load(), username="b@example.com"))
            except CredentialsFileError as exc:
                print("file error:", exc)
            else:
                print("saved")
            """,
            str(path),
        )
    finally:
        home.chmod(0o700)
    assert outcome.startswith(f"file error: {FILE_MESSAGE}. Check permissions."), outcome
    assert path.read_bytes() == before
    assert temp_files(home) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_save_leaves_the_old_file_and_no_temp_file(repo, path, home, monkeypatch, failing) -> None:
    repo.save(make_credentials())
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(CredentialsFileError) as info:
        repo.save(make_credentials("b@example.com"))
    monkeypatch.undo()
    assert str(info.value).startswith(FILE_MESSAGE)
    assert path.read_bytes() == before
    assert temp_files(home) == []


# -- corrupt files -----------------------------------------------------------------------

VALID = textwrap.dedent(
    """\
    [tokens]
    access = "eyJ.a.b"
    refresh = "eyJ.c.d"
    access_expires_at = "2026-02-03T16:45:00Z"
    refresh_expires_at = "2026-02-10T16:30:00Z"

    [user]
    username = "user@example.com"

    [server]
    url = "https://spec-kitty-dev.fly.dev"
    """
)

CORRUPT = {
    "not toml": b"this is [not toml",
    "empty": b"",
    "not utf-8": b'[tokens]\naccess = "\xff\xfe"\n',
    "missing server section": VALID.split("[server]")[0].encode(),
    "missing refresh": VALID.replace('refresh = "eyJ.c.d"\n', "").encode(),
    "access is a number": VALID.replace('access = "eyJ.a.b"', "access = 123").encode(),
    "empty access": VALID.replace('access = "eyJ.a.b"', 'access = ""').encode(),
    "expiry not a timestamp": VALID.replace('"2026-02-03T16:45:00Z"', '"soon"').encode(),
    "expiry as TOML datetime": VALID.replace('"2026-02-03T16:45:00Z"', "2026-02-03T16:45:00Z").encode(),
    "tokens not a table": ('tokens = "x"\n\n[user]' + VALID.split("[user]")[1]).encode(),
    "username is a list": VALID.replace('username = "user@example.com"', 'username = ["a"]').encode(),
}


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
def test_corrupt_or_mistyped_file_is_corrupt_credentials(repo, path, home, content) -> None:
    home.mkdir(mode=0o700)
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(CorruptCredentialsError) as info:
        repo.load()
    assert str(path) in str(info.value)
    assert "eyJ" not in str(info.value) and info.value.__cause__ is None


def test_valid_fixture_for_corrupt_cases_does_load(repo, path, home) -> None:
    # guards the table above: each case differs from a file that loads fine
    home.mkdir(mode=0o700)
    path.write_text(VALID)
    assert repo.load() is not None


def test_corrupt_file_can_be_cleared_and_replaced(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_bytes(b"garbage [[[")
    assert repo.clear() is True
    assert not path.exists()
    path.write_bytes(b"garbage [[[")
    creds = make_credentials()
    repo.save(creds)
    assert repo.load() == creds


# -- symlinks and odd paths --------------------------------------------------------------



@needs_symlinks
@pytest.mark.parametrize("target_exists", [True, False], ids=["target", "dangling"])
def test_symlinked_credentials_file_is_never_followed(repo, path, home, tmp_path, target_exists) -> None:
    home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    if target_exists:
        target.write_text(VALID)
    path.symlink_to(target)
    for action in (repo.load, lambda: repo.save(make_credentials()), repo.clear):
        with pytest.raises(CredentialsFileError) as info:
            action()
        assert str(info.value).startswith(FILE_MESSAGE)
    assert path.is_symlink()
    if target_exists:
        assert target.read_text() == VALID
    else:
        assert not target.exists()
    assert temp_files(home) == []


@needs_symlinks
def test_symlinked_lock_file_is_never_followed(repo, path, home, tmp_path) -> None:
    home.mkdir(mode=0o700)
    target = tmp_path / "lock-target"
    lock_path = home / "credentials.lock"
    lock_path.symlink_to(target)
    for action in (repo.load, lambda: repo.save(make_credentials()), repo.clear):
        with pytest.raises(CredentialsFileError) as info:
            action()
        assert str(info.value).startswith(FILE_MESSAGE)
    with pytest.raises(CredentialsFileError):
        with repo.lock():
            pass
    assert not target.exists()
    assert not path.exists()


def test_home_that_is_a_file_is_a_credentials_file_error(tmp_path) -> None:
    not_a_dir = tmp_path / "home-is-a-file"
    not_a_dir.write_text("x")
    repo = TomlCredentialRepository(not_a_dir / "credentials")
    for action in (repo.load, lambda: repo.save(make_credentials()), repo.clear):
        with pytest.raises(CredentialsFileError) as info:
            action()
        assert not isinstance(info.value, CorruptCredentialsError)
    assert not_a_dir.read_text() == "x"


def test_directory_at_the_credentials_path_is_a_credentials_file_error(repo, path) -> None:
    path.mkdir(parents=True)
    with pytest.raises(CredentialsFileError):
        repo.load()
    with pytest.raises(CredentialsFileError):
        repo.save(make_credentials())
    assert path.is_dir()


def test_load_does_not_create_the_home(repo, home) -> None:
    assert repo.load() is None
    assert repo.clear() is False
    assert not home.exists()


def test_load_imports_neither_tomlkit_nor_filelock(path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import kitty_auth
        preloaded = {{m for m in ("tomlkit", "filelock") if m in sys.modules}}
        from kitty_auth.adapters.toml_repository import TomlCredentialRepository
        TomlCredentialRepository({str(path)!r}).load()
        print(sorted({{m for m in ("tomlkit", "filelock") if m in sys.modules}} - preloaded))
        print(sorted(preloaded))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    imported_by_load, preloaded = result.stdout.splitlines()
    assert imported_by_load == "[]"
    if preloaded != "[]":
        pytest.skip(f"the kitty_auth package itself imports {preloaded}")


# -- other processes ---------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time, filelock
    lock = filelock.FileLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def start_holder(lock_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "locked", f"holder did not start: {line!r}"
    return proc


def test_lock_held_by_another_process_times_out_quickly(path, home) -> None:
    first = make_credentials("first@example.com")
    TomlCredentialRepository(path).save(first)
    holder = start_holder(home / "credentials.lock")
    try:
        repo = TomlCredentialRepository(path, lock_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(CredentialsLockTimeoutError) as info:
            repo.save(make_credentials("second@example.com"))
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 15.0  # it did wait its 0.3 s; the upper bound is only a hang guard
        assert "credentials.lock" in str(info.value)
        with pytest.raises(CredentialsLockTimeoutError):
            repo.clear()
        assert repo.load() == first  # readers never wait for the lock
    finally:
        holder.kill()
        holder.wait()
    assert TomlCredentialRepository(path).load() == first


def test_a_killed_lock_holder_does_not_block_the_next_process(path, home) -> None:
    home.mkdir(mode=0o700)
    holder = start_holder(home / "credentials.lock")
    holder.kill()  # SIGKILL; TerminateProcess on Windows
    holder.wait()
    # wait() has returned, so the holder is gone and the OS has dropped its lock: a repository
    # that does not wait at all must get it (any leftover would be a CredentialsLockTimeoutError).
    repo = TomlCredentialRepository(path, lock_timeout=0.0)
    creds = make_credentials()
    repo.save(creds)
    assert repo.load() == creds


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from kitty_auth.adapters.toml_repository import TomlCredentialRepository
    from kitty_auth.domain.model import Credentials, TokenPair

    def version(i):
        # big tokens widen the window in which a non-atomic writer would leave a torn file
        tag = "AB"[i]
        start = datetime(2026, 2, 3, 16, 30, tzinfo=UTC) + timedelta(hours=i)
        return Credentials(
            tokens=TokenPair(access=tag * 40_000, refresh=tag.lower() * 40_000,
                             access_expires_at=start + timedelta(minutes=15),
                             refresh_expires_at=start + timedelta(days=7)),
            username=f"user-{tag}@example.com", server_url="https://spec-kitty-dev.fly.dev")

    if __name__ == "__main__":
        import filelock, tomlkit  # warm up: the kill should land in saves, not in imports
        repo = TomlCredentialRepository(sys.argv[1])
        print("ready", flush=True)
        i = 0
        while True:
            repo.save(version(i % 2))
            i += 1
    """
)


@pytest.mark.skipif(UNDER_WINE, reason="needs 20 interpreter start-ups within 25 s, more than Wine manages; "
                    "the os.replace it checks is the same call on Windows")
def test_writer_killed_at_a_random_moment_never_leaves_a_torn_file(path, home, tmp_path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    namespace: dict[str, object] = {}
    exec(compile(WRITER, str(script), "exec"), namespace)  # the same two versions, in-process
    versions = [namespace["version"](0), namespace["version"](1)]  # type: ignore[operator]
    home.mkdir(mode=0o700)
    rng = random.Random(1234)
    seen: set[str] = set()
    deadline = time.monotonic() + 25
    rounds = 0
    while rounds < 50 and time.monotonic() < deadline:
        rounds += 1
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.08))
        proc.kill()  # SIGKILL; TerminateProcess on Windows
        proc.wait()
        proc.stdout.close()

        loaded = TomlCredentialRepository(path).load()  # raises CorruptCredentialsError on a torn file
        if loaded is not None:
            assert loaded in versions
            seen.add(loaded.username)
            assert WINDOWS or mode_of(path) == 0o600  # no modes on Windows (portability.posix_modes)
        for leftover in temp_files(home):
            assert WINDOWS or mode_of(leftover) == 0o600
        unexpected = {p.name for p in home.iterdir()} - {"credentials", "credentials.lock"}
        assert all(name.startswith(".credentials.tmp-") for name in unexpected), unexpected
    assert rounds >= 20
    assert seen, "the writer never completed a save; the test proved nothing"
    TomlCredentialRepository(path).save(versions[0])  # the next save sweeps dead writers' temp files
    assert temp_files(home) == []


# -- what is not ours survives every write ----------------------------------------------

FOREIGN = textwrap.dedent(
    """\
    # shared with the spec-kitty host
    [tracker.providers.jira]
    url = "https://jira.example"  # the host's
    token = "jira-secret"

    [tokens]
    access = "eyJ.a.b"
    refresh = "eyJ.c.d"
    access_expires_at = "2026-02-03T16:45:00Z"
    refresh_expires_at = "2026-02-10T16:30:00Z"
    x = 1

    [user]
    username = "user@example.com"
    team_slug = "acme"

    [[plugins]]
    name = "a"

    [server]
    url = "https://spec-kitty-dev.fly.dev"
    extra = "kept"
    """
)


def test_save_changes_only_our_values(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_text(FOREIGN)
    creds = dataclasses.replace(make_credentials(), team_slug="acme")
    repo.save(creds)
    text = path.read_text()
    assert text == (
        FOREIGN.replace('"eyJ.a.b"', f'"{creds.tokens.access}"').replace('"eyJ.c.d"', f'"{creds.tokens.refresh}"')
    )
    assert repo.load() == creds
    assert WINDOWS or mode_of(path) == 0o600  # no modes on Windows (portability.posix_modes)


def test_a_refresh_keeps_the_team_and_everything_else(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_text(FOREIGN)
    stored = repo.load()
    assert stored.team_slug == "acme"
    later = ISSUED + timedelta(hours=1)
    issued = IssuedTokens(access=make_jwt(iat=later, lifetime=timedelta(minutes=15)),
                          refresh=make_jwt(iat=later, lifetime=timedelta(days=7), kind="refresh"))
    repo.save(stored.refreshed(issued, later))
    doc = tomllib.loads(path.read_text())
    assert doc["user"]["team_slug"] == "acme"
    assert doc["tracker"]["providers"]["jira"]["token"] == "jira-secret"
    assert doc["server"]["extra"] == "kept" and doc["tokens"]["x"] == 1 and doc["plugins"] == [{"name": "a"}]
    assert doc["tokens"]["access"] == issued.access


def test_clear_removes_our_keys_and_keeps_the_rest(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_text(FOREIGN)
    assert repo.clear() is True
    doc = tomllib.loads(path.read_text())
    assert doc == {"tracker": {"providers": {"jira": {"url": "https://jira.example", "token": "jira-secret"}}},
                   "tokens": {"x": 1}, "plugins": [{"name": "a"}], "server": {"extra": "kept"}}
    assert "# shared with the spec-kitty host" in path.read_text()
    assert repo.load() is None  # logged out
    assert repo.clear() is False  # no session left to remove; the file stays
    assert path.exists()
    creds = make_credentials()
    repo.save(creds)  # and a new login goes back into the same file
    assert repo.load() == creds
    assert tomllib.loads(path.read_text())["tracker"]["providers"]["jira"]["token"] == "jira-secret"


def test_clear_of_a_file_that_is_only_ours_removes_it(repo, path) -> None:
    repo.save(make_credentials())
    assert repo.clear() is True
    assert not path.exists()


def test_a_file_with_only_another_programs_tables_is_logged_out_not_corrupt(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_text('[tracker.providers.jira]\nurl = "https://jira.example"\n')
    assert repo.load() is None


@posix_modes
def test_the_permission_fix_does_not_rewrite_the_file(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_text(FOREIGN)
    path.chmod(0o644)
    before = os.stat(path)
    assert repo.load() is not None
    after = os.stat(path)
    assert mode_of(path) == 0o600
    assert path.read_text() == FOREIGN
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


def test_login_over_a_file_that_does_not_parse_replaces_it(repo, path, home) -> None:
    home.mkdir(mode=0o700)
    path.write_bytes(b"[tracker\nthis is not toml")
    creds = make_credentials()
    repo.save(creds)
    assert repo.load() == creds


# -- the spec-kitty 2.1.3 host's own CredentialStore, run as a host process ----------------

HOST_VERSION = "2.1.3"


@functools.cache
def host_source() -> Path:
    """The host's ``specify_cli`` source: $SPEC_KITTY_213_SOURCE, else the wheel from the package
    index, downloaded and unpacked once per machine (pip is the only network the tests use)."""
    configured = os.environ.get("SPEC_KITTY_213_SOURCE")
    if configured:
        return Path(configured)
    import tempfile
    import zipfile

    root = Path(tempfile.gettempdir()) / f"kitty-auth-spec-kitty-cli-{HOST_VERSION}-src"
    source = root / "specify_cli"
    if not (source / "sync" / "auth.py").is_file():
        download = root.with_name(root.name + f".download-{os.getpid()}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary", ":all:", "-d", str(download),
                        f"spec-kitty-cli=={HOST_VERSION}"], check=True, timeout=300)
        (wheel,) = download.glob("*.whl")
        unpacked = root.with_name(root.name + f".unpack-{os.getpid()}")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked)
        shutil.rmtree(download, ignore_errors=True)
        try:
            os.replace(unpacked, root)  # atomic: concurrent test runs never see a half-unpacked tree
        except OSError:
            shutil.rmtree(unpacked, ignore_errors=True)  # another run got there first
    return source


# Loads the host's sync/auth.py (and the two leaf modules it needs) without the rest of the host
# package, then runs one command against ~/.spec-kitty/credentials with HOME set by the test.
HOST = textwrap.dedent(
    """
    import importlib.util, json, sys, time, types
    from datetime import datetime
    root = sys.argv[1]

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    for name in ("specify_cli", "specify_cli.core", "specify_cli.sync"):
        package = types.ModuleType(name)
        package.__path__ = []
        sys.modules[name] = package
    load("specify_cli.core.atomic", root + "/core/atomic.py")
    load("specify_cli.sync.feature_flags", root + "/sync/feature_flags.py")
    config = types.ModuleType("specify_cli.sync.config")
    config.SyncConfig = object  # only AuthClient uses it
    sys.modules["specify_cli.sync.config"] = config
    auth = load("specify_cli.sync.auth", root + "/sync/auth.py")  # needs toml, httpx, filelock
    store = auth.CredentialStore()
    command = sys.argv[2]
    if command == "save":
        args = json.loads(sys.argv[3])
        for key in ("access_expires_at", "refresh_expires_at"):
            args[key] = datetime.fromisoformat(args[key])
        store.save(**args)
    elif command == "read":
        print(json.dumps({
            "paths": [str(store.credentials_path), str(store.lock_path)],
            "access": store.get_access_token(), "refresh": store.get_refresh_token(),
            "username": store.get_username(), "server_url": store.get_server_url(),
            "team_slug": store.get_team_slug(), "expiry": store.get_token_expiry_info(),
        }))
    elif command == "hold":
        with store._acquire_lock():
            print("locked", flush=True)
            time.sleep(60)
    elif command == "try-lock":
        lock = store._acquire_lock()
        try:
            lock.acquire(timeout=float(sys.argv[3]))
        except auth.Timeout:
            print("busy")
        else:
            print("free")
            lock.release()
    """
)


def host(home_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    source = host_source()
    assert (source / "sync" / "auth.py").is_file(), f"the spec-kitty 2.1.3 source is not at {source}"
    env = {**os.environ, "HOME": str(home_dir), "USERPROFILE": str(home_dir)}  # Path.home() on Windows
    result = subprocess.run([sys.executable, "-c", HOST, str(source), *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def host_save(home_dir: Path, **fields: object) -> bytes:
    host(home_dir, "save", json.dumps(fields))
    return (home_dir / ".spec-kitty" / "credentials").read_bytes()


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    home_dir = tmp_path / "user-home"  # the host only creates ~/.spec-kitty, not ~
    home_dir.mkdir()
    return home_dir


@pytest.fixture
def host_repo(user_home: Path) -> TomlCredentialRepository:
    return TomlCredentialRepository(user_home / ".spec-kitty" / "credentials", lock_timeout=2.0)


def test_a_file_the_213_host_wrote_loads(user_home, host_repo) -> None:
    data = host_save(user_home, access_token="acc", refresh_token="ref",
                     access_expires_at="2026-02-03T16:45:00.123456+00:00",
                     refresh_expires_at="2026-02-10T16:30:00+00:00",
                     username="user@example.com", server_url="https://spec-kitty-dev.fly.dev", team_slug="acme")
    # what toml 0.10.2 wrote, byte for byte: isoformat() of aware UTC datetimes
    assert data.decode() == textwrap.dedent(
        """\
        [tokens]
        access = "acc"
        refresh = "ref"
        access_expires_at = "2026-02-03T16:45:00.123456+00:00"
        refresh_expires_at = "2026-02-10T16:30:00+00:00"

        [user]
        username = "user@example.com"
        team_slug = "acme"

        [server]
        url = "https://spec-kitty-dev.fly.dev"
        """
    )
    loaded = host_repo.load()
    assert loaded.tokens == TokenPair("acc", "ref", datetime(2026, 2, 3, 16, 45, 0, 123456, tzinfo=UTC),
                                      datetime(2026, 2, 10, 16, 30, tzinfo=UTC))
    assert (loaded.username, loaded.server_url, loaded.team_slug) == (
        "user@example.com", "https://spec-kitty-dev.fly.dev", "acme")


def test_naive_and_offset_instants_the_host_wrote_load_as_utc(user_home, host_repo) -> None:
    # spec-kitty 2.0.x passed datetime.utcnow(): isoformat() without a zone, with microseconds
    data = host_save(user_home, access_token="acc", refresh_token="ref",
                     access_expires_at="2026-02-03T16:45:00.123456", refresh_expires_at="2026-02-10T18:30:00+02:00",
                     username="user@example.com", server_url="https://spec-kitty-dev.fly.dev")
    assert b'access_expires_at = "2026-02-03T16:45:00.123456"\n' in data
    assert b'refresh_expires_at = "2026-02-10T18:30:00+02:00"\n' in data
    loaded = host_repo.load()
    assert loaded.tokens.access_expires_at == datetime(2026, 2, 3, 16, 45, 0, 123456, tzinfo=UTC)
    assert loaded.tokens.refresh_expires_at == datetime(2026, 2, 10, 16, 30, tzinfo=UTC)
    assert loaded.team_slug is None


def _future_session(**changes: object) -> Credentials:
    now = datetime.now(UTC).replace(microsecond=0)
    creds = Credentials(
        tokens=TokenPair(access=make_jwt(iat=now, lifetime=timedelta(minutes=15)),
                         refresh=make_jwt(iat=now, lifetime=timedelta(days=7), kind="refresh"),
                         access_expires_at=now + timedelta(minutes=15), refresh_expires_at=now + timedelta(days=7)),
        username="user@example.com", server_url="https://spec-kitty-dev.fly.dev", team_slug="acme",
    )
    return dataclasses.replace(creds, **changes)


def test_the_213_host_reads_a_password_session_we_wrote(user_home, host_repo) -> None:
    creds = _future_session()
    host_repo.save(creds)
    seen = json.loads(host(user_home, "read").stdout)
    assert seen["paths"] == [str(host_repo.path), str(host_repo.lock_path)]  # one file, one lock
    assert seen["access"] == creds.tokens.access and seen["refresh"] == creds.tokens.refresh
    assert (seen["username"], seen["server_url"], seen["team_slug"]) == (
        "user@example.com", "https://spec-kitty-dev.fly.dev", "acme")
    assert seen["expiry"] == {"access_expires_at": format_instant(creds.tokens.access_expires_at),
                              "refresh_expires_at": format_instant(creds.tokens.refresh_expires_at)}


def test_the_213_host_reads_an_oauth_session_we_wrote(user_home, host_repo) -> None:
    creds = _future_session(
        tokens=dataclasses.replace(_future_session().tokens, refresh_expires_at=None),
        login_method=LoginMethod.DEVICE, session_id="s-1",
        oauth=OAuthClient("cli", "https://spec-kitty-dev.fly.dev/oauth/token/"),
        identity=Identity("user@example.com", "Zoë", "42", (Team("7", "acme", "Acme", "owner", True),)),
    )
    host_repo.save(creds)
    seen = json.loads(host(user_home, "read").stdout)  # toml 0.10.2 parses our whole layout
    assert seen["access"] == creds.tokens.access
    assert seen["refresh"] is None  # the host wants an expiry; an OAuth refresh token has none here
    assert (seen["username"], seen["team_slug"]) == ("user@example.com", "acme")
    assert host_repo.load() == creds


def test_the_213_host_reads_the_active_session_while_other_accounts_are_stored(user_home, host_repo) -> None:
    """The host knows one session: the active one, in [tokens]/[user]/[server]. The others, under
    [[other_sessions]], change nothing it reads (toml 0.10.2 parses them too)."""
    other = _future_session(username="ci-bot@example.com", server_url="https://other.example.com", team_slug=None)
    host_repo.save(other)
    active = _future_session()
    host_repo.save(active)
    assert [s.credentials for s in host_repo.sessions()] == [active, other]
    seen = json.loads(host(user_home, "read").stdout)
    assert (seen["access"], seen["refresh"]) == (active.tokens.access, active.tokens.refresh)
    assert (seen["username"], seen["server_url"], seen["team_slug"]) == (
        "user@example.com", "https://spec-kitty-dev.fly.dev", "acme")
    host_repo.activate("https://other.example.com", "ci-bot@example.com")
    seen = json.loads(host(user_home, "read").stdout)
    assert (seen["access"], seen["username"], seen["team_slug"]) == (other.tokens.access, "ci-bot@example.com", None)


def test_each_side_reads_what_the_other_wrote_in_turn(user_home, host_repo) -> None:
    now = datetime.now(UTC)
    host_save(user_home, access_token="host-access", refresh_token="host-refresh",
              access_expires_at=(now + timedelta(minutes=15)).isoformat(),
              refresh_expires_at=(now + timedelta(days=7)).isoformat(),
              username="user@example.com", server_url="https://spec-kitty-dev.fly.dev", team_slug="acme")
    stored = host_repo.load()
    assert stored.tokens.access == "host-access"
    host_repo.save(dataclasses.replace(stored, tokens=dataclasses.replace(stored.tokens, access="our-access")))
    seen = json.loads(host(user_home, "read").stdout)
    assert (seen["access"], seen["refresh"], seen["team_slug"]) == ("our-access", "host-refresh", "acme")


# -- one lock for both sides, and its holder named ----------------------------------------


def test_our_lock_path_is_the_hosts_rule(tmp_path) -> None:
    for name in ("credentials", "creds.toml", ".credentials"):
        path = tmp_path / name
        assert TomlCredentialRepository(path).lock_path == path.with_suffix(".lock")
    assert TomlCredentialRepository(tmp_path / "credentials").lock_path.name == "credentials.lock"


def test_a_host_process_holding_the_lock_excludes_us_and_is_named(user_home, host_repo) -> None:
    host_repo.save(_future_session())
    proc = subprocess.Popen([sys.executable, "-c", HOST, str(host_source()), "hold"],
                            env={**os.environ, "HOME": str(user_home), "USERPROFILE": str(user_home)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        quick = TomlCredentialRepository(host_repo.path, lock_timeout=0.3)
        with pytest.raises(CredentialsLockTimeoutError) as info:
            quick.save(_future_session(username="other@example.com"))
        assert str(host_repo.lock_path) in str(info.value)
        if not WINDOWS:  # the host writes no PID: found in /proc/locks; Windows names no holder
            assert f"(held by process {proc.pid})" in str(info.value)
    finally:
        proc.kill()
        proc.wait()
    assert host_repo.load().username == "user@example.com"


def test_we_exclude_a_host_process_while_we_hold_the_lock(user_home, host_repo) -> None:
    host_repo.save(_future_session())
    with host_repo.lock():
        assert host(user_home, "try-lock", "0.3").stdout.strip() == "busy"
    assert host(user_home, "try-lock", "5").stdout.strip() == "free"


HOLD_OURS = textwrap.dedent(
    """
    import sys, time
    from kitty_auth.adapters.toml_repository import TomlCredentialRepository
    with TomlCredentialRepository(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(60)
    """
)


@posix_pid_in_lock
@pytest.mark.parametrize("proc_locks", [True, False], ids=["/proc/locks", "PID in the lock file"])
def test_our_holder_writes_its_pid_and_a_waiter_names_it(path, home, monkeypatch, proc_locks) -> None:
    TomlCredentialRepository(path).save(make_credentials())
    lock_path = home / "credentials.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_OURS, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        assert lock_path.read_text() == f"{proc.pid}\n"
        if not proc_locks:
            monkeypatch.setattr(toml_repository, "_PROC_LOCKS", str(home / "no-such-file"))
        with pytest.raises(CredentialsLockTimeoutError) as info:
            with TomlCredentialRepository(path, lock_timeout=0.3).lock():
                pass
        assert str(info.value) == (
            f"Another spec-kitty process held the credentials lock {lock_path} for more than 0.3 s "
            f"(held by process {proc.pid}); try again."
        )
    finally:
        proc.kill()
        proc.wait()


@posix_pid_in_lock
def test_the_lock_file_is_emptied_on_release_and_a_dead_holders_pid_is_not_named(path, home, monkeypatch) -> None:
    repo = TomlCredentialRepository(path, lock_timeout=0.3)
    lock_path = home / "credentials.lock"
    with repo.lock():
        assert lock_path.read_text() == f"{os.getpid()}\n"
        with repo.lock():  # re-entered: still ours
            assert lock_path.read_text() == f"{os.getpid()}\n"
        assert lock_path.read_text() == f"{os.getpid()}\n"
    assert lock_path.read_text() == ""
    # a holder SIGKILLed while holding leaves its PID behind; a host-like holder writes none
    killed = subprocess.Popen([sys.executable, "-c", HOLD_OURS, str(path)], stdout=subprocess.PIPE, text=True)
    assert killed.stdout is not None and killed.stdout.readline().strip() == "locked"
    killed.kill()
    killed.wait()
    assert lock_path.read_text() == f"{killed.pid}\n"
    holder = start_holder(lock_path)
    try:
        monkeypatch.setattr(toml_repository, "_PROC_LOCKS", str(home / "no-such-file"))
        with pytest.raises(CredentialsLockTimeoutError) as info:
            repo.save(make_credentials())
        assert "held by" not in str(info.value)  # the dead PID is not blamed
        monkeypatch.undo()
        with pytest.raises(CredentialsLockTimeoutError) as info:
            repo.save(make_credentials())
        assert f"(held by process {holder.pid})" in str(info.value)
    finally:
        holder.kill()
        holder.wait()


# -- the spec-kitty host's tracker store writes the same file in place --------------------------

# What specify_cli/tracker/credentials.py (spec-kitty-cli 2.1.3) does on save: open(path, "w"), which
# truncates at once, then flock(LOCK_EX) on that file (never credentials.lock), then the write. This
# stand-in does the same in steps the test drives through stdin/stdout: each step waits for a line.
TRACKER = textwrap.dedent(
    """
    import fcntl, sys, tomllib
    path = sys.argv[1]
    with open(path, encoding="utf-8") as fh:
        text = fh.read()  # the tracker's load (our session included), before its save
    text += '\\n[tracker.providers.jira]\\nurl = "https://jira.example.test"\\ntoken = "tracker-secret"\\n'
    step = lambda what: (print(what, flush=True), sys.stdin.readline())
    with open(path, "w", encoding="utf-8") as handle:  # truncated here, before any lock
        if sys.argv[2] == "truncate-first":
            step("truncated")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        half = len(text) // 2
        handle.write(text[:half])
        handle.flush()
        if sys.argv[2] == "lock-mid-write":
            step("half written")
        handle.write(text[half:])
    print("done", flush=True)
    """
)


class Tracker:
    def __init__(self, path: Path, mode: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", TRACKER, str(path), mode],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def expect(self, line: str) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == line

    def go_on(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        self.expect("done")
        assert self.proc.wait(30) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def tracker_table(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))["tracker"]["providers"]["jira"]


@posix_tracker_flock
@pytest.mark.parametrize("operation", ["save", "clear"])
def test_a_write_waits_for_the_trackers_write_in_progress_and_keeps_its_table(path: Path, operation: str) -> None:
    """The tracker holds its flock with half its file written: we must not read that half and replace it."""
    TomlCredentialRepository(path).save(make_credentials("first@example.com"))
    waiting = threading.Event()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        waiting.set()  # we are waiting (for the tracker's flock); the tracker may go on
        time.sleep(seconds)

    repo = TomlCredentialRepository(path, lock_timeout=30.0, sleep=sleep)
    tracker = Tracker(path, "lock-mid-write")
    try:
        tracker.expect("half written")
        second = make_credentials("second@example.com")
        errors: list[BaseException] = []

        def write() -> None:
            try:
                repo.save(second) if operation == "save" else repo.clear()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        assert waiting.wait(30), "the write did not wait for the tracker's lock"
        tracker.go_on()
        tracker.finish()
        writer.join(30)
        assert not writer.is_alive() and errors == []
    finally:
        tracker.kill()
    # It waited on the tracker's lock; it never read the half-written file (which would have
    # cost a settle wait and a second read).
    assert toml_repository._SETTLE not in waits
    assert tracker_table(path) == {"url": "https://jira.example.test", "token": "tracker-secret"}
    assert repo.load() == (second if operation == "save" else None)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@posix_tracker_flock
def test_a_save_that_finds_the_file_truncated_by_the_tracker_reads_it_again(path: Path) -> None:
    """The tracker has truncated the file and not yet taken its flock: an empty file is not the truth."""
    TomlCredentialRepository(path).save(make_credentials("first@example.com"))
    tracker = Tracker(path, "truncate-first")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:  # the settle wait: the tracker now takes its lock and writes
            tracker.go_on()
            tracker.finish()

    try:
        tracker.expect("truncated")
        assert path.read_bytes() == b""
        second = make_credentials("second@example.com")
        TomlCredentialRepository(path, sleep=sleep).save(second)
    finally:
        tracker.kill()
    assert waits == [toml_repository._SETTLE]
    assert tracker_table(path)["token"] == "tracker-secret"
    assert TomlCredentialRepository(path).load() == second


BROKEN = b'[tokens]\naccess = "x"\n[tracker.providers.jira\nurl = "https://jira.example.test"\n'


def asides(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(path.name + ".unparsable*"))


def test_a_refresh_keeps_a_file_it_cannot_parse_aside_instead_of_dropping_it(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = make_credentials("first@example.com"), make_credentials("second@example.com")
    waits: list[float] = []
    repo = TomlCredentialRepository(path, sleep=waits.append)
    repo.save(first)
    with repo.lock():  # a refresh: load the good session, then (meanwhile) the file breaks
        assert repo.load() == first
        path.write_bytes(BROKEN)
        repo.save(second)
    aside = path.with_name("credentials.unparsable.1")
    assert waits == [toml_repository._SETTLE]  # read once more before giving up
    assert repo.load() == second
    assert aside.read_bytes() == BROKEN
    assert WINDOWS or stat.S_IMODE(os.stat(aside).st_mode) == 0o600  # no modes on Windows (portability.posix_modes)
    assert capsys.readouterr().err == f"Warning: {path} could not be parsed; its content was kept in {aside}.\n"


def test_a_login_over_a_file_that_does_not_parse_keeps_it_aside_too(path: Path) -> None:
    repo = TomlCredentialRepository(path, sleep=lambda _: None)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(BROKEN)
    creds = make_credentials()
    repo.save(creds)
    assert repo.load() == creds
    assert path.with_name("credentials.unparsable.1").read_bytes() == BROKEN


def test_only_the_last_three_unparsable_files_are_kept_numbered(path: Path) -> None:
    repo = TomlCredentialRepository(path, sleep=lambda _: None)
    path.parent.mkdir(mode=0o700)
    for n in range(1, 6):
        path.write_bytes(BROKEN + f"# copy {n}\n".encode())
        repo.save(make_credentials())
    assert asides(path) == ["credentials.unparsable.3", "credentials.unparsable.4", "credentials.unparsable.5"]
    assert path.with_name("credentials.unparsable.5").read_bytes().endswith(b"# copy 5\n")


@needs_symlinks
def test_a_symlink_where_a_copy_would_go_is_never_followed(path: Path, tmp_path: Path) -> None:
    repo = TomlCredentialRepository(path, sleep=lambda _: None)
    path.parent.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not yours")
    path.with_name("credentials.unparsable.1").symlink_to(target)
    path.write_bytes(BROKEN)
    creds = make_credentials()
    repo.save(creds)
    assert target.read_bytes() == b"not yours"
    assert os.path.islink(path.with_name("credentials.unparsable.1"))
    assert path.with_name("credentials.unparsable.2").read_bytes() == BROKEN
    assert repo.load() == creds


def test_a_failing_copy_never_costs_the_session_being_saved(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The server has already rotated the tokens a refresh saves: they are stored even when the
    unparsable file cannot be copied aside (said on stderr)."""

    class NoRoomAside(TomlCredentialRepository):
        def _next_aside(self):  # a place where the copy cannot be created
            yield self.path.parent / "missing-directory" / "credentials.unparsable.1"

    repo = NoRoomAside(path, sleep=lambda _: None)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(BROKEN)
    creds = make_credentials()
    repo.save(creds)
    assert repo.load() == creds
    err = capsys.readouterr().err
    assert "could not be parsed and could not be kept aside" in err and "it was replaced" in err


def test_logout_moves_a_file_it_cannot_parse_aside(path: Path) -> None:
    repo = TomlCredentialRepository(path, sleep=lambda _: None)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(BROKEN)
    assert repo.clear() is True
    assert not path.exists()
    assert path.with_name("credentials.unparsable.1").read_bytes() == BROKEN


def test_a_file_too_large_to_be_ours_is_moved_aside_not_dropped(path: Path) -> None:
    repo = TomlCredentialRepository(path, sleep=lambda _: None)
    path.parent.mkdir(mode=0o700)
    big = b"# " + b"x" * (toml_repository._MAX_FILE_BYTES + 10) + b"\n"
    path.write_bytes(big)
    creds = make_credentials()
    repo.save(creds)
    assert repo.load() == creds
    assert path.with_name("credentials.unparsable.1").read_bytes() == big


NAN_TABLE = '\n# written by a plugin\n[plugins.metrics]\nratio = nan\nscores = [nan, 1.5, -0.0]\n'


def test_a_foreign_nan_survives_login_refresh_and_logout_byte_for_byte(path: Path) -> None:
    """NaN is valid TOML and never equal to itself: the check that the edit kept foreign data must
    not mistake it for a loss (which used to write a fresh file, and logout to delete it)."""
    repo = TomlCredentialRepository(path)
    repo.save(make_credentials())
    path.write_text(path.read_text() + NAN_TABLE)
    refreshed = dataclasses.replace(make_credentials(), team_slug="acme")
    repo.save(refreshed)
    assert path.read_text().endswith(NAN_TABLE) and repo.load() == refreshed
    assert repo.clear() is True
    assert path.read_text().strip() == NAN_TABLE.strip()


def test_an_edit_that_cannot_keep_foreign_data_refuses_and_leaves_the_file(path: Path) -> None:
    """Our other sessions live under [[other_sessions]]; a foreign table of that name cannot be
    kept by a save that must store one there: the save refuses with one sentence, the file stays."""
    repo = TomlCredentialRepository(path)
    first = make_credentials("first@example.com")
    repo.save(first)
    path.write_text(path.read_text() + '\n[other_sessions]\nowner = "someone else"\n')
    before = path.read_bytes()
    with pytest.raises(CredentialsFileEditError) as info:
        repo.save(make_credentials("second@example.com"))
    assert path.read_bytes() == before
    assert "left unchanged" in str(info.value) and "\n" not in str(info.value)
    assert repo.load() == first


def test_a_save_among_thousands_of_foreign_tables_is_linear() -> None:
    """2,000 foreign tables took 27.6 s under the lock (quadratic header search); a generous bound
    catches a return to that, the bench gives the figure."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "home" / "credentials"
        repo = TomlCredentialRepository(path)
        repo.save(make_credentials())
        path.write_text(path.read_text() + "".join(
            f'\n# tracker {i}\n[tracker.providers.p{i}]\nurl = "https://x{i}.example"\n' for i in range(2000)))
        started = time.monotonic()
        repo.save(dataclasses.replace(make_credentials(), team_slug="acme"))
        repo.clear()
        assert time.monotonic() - started < 10.0
        assert len(tomllib.loads(path.read_text())["tracker"]["providers"]) == 2000


@posix_tracker_flock
def test_a_save_does_not_replace_a_file_the_tracker_truncated_after_our_read(path: Path) -> None:
    """The tracker's open(path, "w") lands between our read and our replace, then it waits for our
    flock: replacing now would send its write into the file we replaced. We let it write, then redo."""
    import fcntl

    TomlCredentialRepository(path).save(make_credentials("first@example.com"))
    tracked = path.read_text(encoding="utf-8") + '\n[tracker.providers.jira]\ntoken = "tracker-secret"\n'
    truncated = threading.Event()

    def tracker_save() -> None:  # the tracker's save, in a thread: flock is per open file
        with open(path, "w", encoding="utf-8") as handle:
            truncated.set()
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # waits for our flock
            handle.write(tracked)

    tracker = threading.Thread(target=tracker_save)

    class ReadThenTrackerTruncates(TomlCredentialRepository):
        def _read_for_update(self) -> bytes | None:
            data = super()._read_for_update()
            if not tracker.is_alive() and not truncated.is_set():
                tracker.start()
                assert truncated.wait(30)
            return data

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        tracker.join(30)  # our flock is released here: the tracker writes

    second = make_credentials("second@example.com")
    ReadThenTrackerTruncates(path, sleep=sleep).save(second)
    assert waits == [toml_repository._SETTLE] and not tracker.is_alive()
    assert tracker_table(path) == {"token": "tracker-secret"}
    assert TomlCredentialRepository(path).load() == second


@pytest.mark.parametrize("content", [
    b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",  # nested deeper than tomllib can recurse
    b"[tracker]\nn = " + b"9" * 5000 + b"\n",  # an integer tomllib refuses with a plain ValueError
], ids=["deep nesting", "5000-digit integer"])
def test_a_file_python_cannot_read_as_toml_is_corrupt_and_kept_aside_by_login_and_logout(path: Path, content: bytes) -> None:
    repo = TomlCredentialRepository(path, sleep=lambda _: None)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content)
    with pytest.raises(CorruptCredentialsError):
        repo.load()
    creds = make_credentials()
    repo.save(creds)
    assert repo.load() == creds and path.with_name("credentials.unparsable.1").read_bytes() == content
    path.write_bytes(content)
    assert repo.clear() is True and not path.exists()
    assert path.with_name("credentials.unparsable.2").read_bytes() == content
