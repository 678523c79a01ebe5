"""TomlCredentialRepository against a real filesystem and real processes.

The exact file text, permissions whatever the umask, corrupt files, symlinks, a lock held (or
abandoned by a killed process) elsewhere, and a writer SIGKILLed mid-save.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    CredentialsFileError,
    CredentialsLockTimeoutError,
)
from kitty_auth.domain.model import Credentials, TokenPair
from kitty_auth.testing import make_jwt

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions / signals")


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


@posix_only
def test_file_is_0600_lock_0600_and_home_0700_even_with_umask_000(repo, path, home) -> None:
    old = os.umask(0o000)
    try:
        repo.save(make_credentials())
    finally:
        os.umask(old)
    assert mode_of(home) == 0o700
    assert mode_of(path) == 0o600
    assert mode_of(path.with_name("credentials.lock")) == 0o600


@posix_only
def test_loose_existing_lock_file_is_tightened_to_0600(repo, home) -> None:
    home.mkdir(mode=0o700)
    lock_path = home / "credentials.lock"
    lock_path.write_text("")
    lock_path.chmod(0o666)
    with repo.lock():
        assert mode_of(lock_path) == 0o600


@posix_only
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
    assert sorted(p.name for p in home.iterdir()) == ["credentials", "credentials.lock"]


def test_stale_temp_file_of_a_dead_writer_is_removed_by_the_next_save(repo, home) -> None:
    repo.save(make_credentials())
    stale = home / ".credentials.tmp-deadbeef"
    stale.write_text("half a file")
    repo.save(make_credentials("b@example.com"))
    assert not stale.exists()


@posix_only
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


@posix_only
def test_private_file_gives_no_warning(repo, path, capfd) -> None:
    repo.save(make_credentials())
    capfd.readouterr()
    TomlCredentialRepository(path).load()
    assert capfd.readouterr() == ("", "")


@posix_only
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


@posix_only
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
    "expiry without zone": VALID.replace('"2026-02-03T16:45:00Z"', '"2026-02-03T16:45:00"').encode(),
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

symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs symlinks")


@symlinks
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


@symlinks
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
        assert 0.25 <= elapsed < 3.0
        assert "credentials.lock" in str(info.value)
        with pytest.raises(CredentialsLockTimeoutError):
            repo.clear()
        assert repo.load() == first  # readers never wait for the lock
    finally:
        holder.kill()
        holder.wait()
    assert TomlCredentialRepository(path).load() == first


@posix_only
def test_a_killed_lock_holder_does_not_block_the_next_process(path, home) -> None:
    home.mkdir(mode=0o700)
    holder = start_holder(home / "credentials.lock")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    repo = TomlCredentialRepository(path, lock_timeout=2.0)
    started = time.monotonic()
    creds = make_credentials()
    repo.save(creds)
    assert time.monotonic() - started < 1.5
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


@posix_only
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
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

        loaded = TomlCredentialRepository(path).load()  # raises CorruptCredentialsError on a torn file
        if loaded is not None:
            assert loaded in versions
            seen.add(loaded.username)
            assert mode_of(path) == 0o600
        for leftover in temp_files(home):
            assert mode_of(leftover) == 0o600
        unexpected = {p.name for p in home.iterdir()} - {"credentials", "credentials.lock"}
        assert all(name.startswith(".credentials.tmp-") for name in unexpected), unexpected
    assert rounds >= 20
    assert seen, "the writer never completed a save; the test proved nothing"
    TomlCredentialRepository(path).save(versions[0])  # the next save sweeps dead writers' temp files
    assert temp_files(home) == []
