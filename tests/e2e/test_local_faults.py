"""Every local fault and bad input, end to end through the installed CLI, at DEBUG: damaged or unsafe
credentials files, an unusable home folder (also as a real non-root user), a busy lock, and server URLs,
usernames and passwords that cannot be used as given. Each gets one clear sentence and exit 1 (or is
handled as the contract says), no traceback, and nothing that should be kept is lost or followed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from refserver import DEMO_PASSWORD, DEMO_USERNAME, TOKEN_PATH

from .conftest import E2E, HANG_LIMIT, PYTHON, WINDOWS_CLIENT, Run, client_path

# With the Windows CLI (the Windows lane: tests/e2e/conftest.py), what differs is skipped with its reason.
posix_modes = pytest.mark.skipif(
    WINDOWS_CLIENT, reason="POSIX permission bits: on Windows kitty-auth neither sets nor checks modes; the user "
    "profile's ACL protects the file")
linux_symlinks = pytest.mark.skipif(
    WINDOWS_CLIENT, reason="a Linux symlink is invisible to a Windows program under Wine (Wine follows it); "
    "tests/integration checks the refusal wherever symlinks can be created")
posix_users = pytest.mark.skipif(
    WINDOWS_CLIENT, reason="POSIX users and ownership (setpriv, chown, modes); Windows has ACLs instead")

pytestmark = pytest.mark.e2e

FILE_MESSAGE = "Cannot access credentials file. Check permissions."
LOOSE_FILE_WARNING = "was readable by other users; its permissions were set to 0600."


def login(e2e: E2E, *extra: str, **env: str) -> Run:
    return e2e.login(DEMO_USERNAME, DEMO_PASSWORD, *extra, **env)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def private(path: Path) -> bool:
    """Mode 0600; with the Windows CLI, which sets no modes (see posix_modes), always true."""
    return WINDOWS_CLIENT or mode(path) == 0o600


def snapshot(path: Path) -> tuple[bytes, int] | None:
    try:
        return path.read_bytes(), mode(path)
    except FileNotFoundError:
        return None


def assert_failed_with(run: Run, sentence: str) -> None:
    assert run.returncode == 1, run.output
    assert sentence in run.stderr, run.stderr


def warnings(run: Run) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("Warning:")]


def no_requests(e2e: E2E) -> bool:
    return e2e.server.stats()["requests"] == {}


@pytest.fixture
def logged_in(e2e: E2E) -> E2E:
    assert login(e2e).returncode == 0
    e2e.server.reset_stats()
    return e2e


# ------------------------------------------------------------------------------ a damaged credentials file

VALID = """\
[tokens]
access = "eyJhbGciOiJIUzI1NiJ9.e30.access-signature"
refresh = "eyJhbGciOiJIUzI1NiJ9.e30.refresh-signature"
access_expires_at = "2030-02-03T16:45:00Z"
refresh_expires_at = "2030-02-10T16:30:00Z"

[user]
username = "user@example.com"

[server]
url = "https://spec-kitty-dev.fly.dev"
"""

CORRUPT = {
    "not toml": b"this is [not toml",
    "control bytes": bytes(range(32)) * 4,  # (the harness cannot read non-UTF-8 files: see the report)
    "empty file": b"",
    "missing [server]": VALID.split("[server]")[0].encode(),
    "access is a number": VALID.replace('access = "eyJhbGciOiJIUzI1NiJ9.e30.access-signature"', "access = 42").encode(),
    "expiry not a timestamp": VALID.replace('"2030-02-03T16:45:00Z"', '"tomorrow"').encode(),
    "expiry as a TOML datetime": VALID.replace('"2030-02-03T16:45:00Z"', "2030-02-03T16:45:00Z").encode(),
    "username is a table": VALID.replace('username = "user@example.com"', "username = { a = 1 }").encode(),
}


def write_credentials(e2e: E2E, content: bytes, file_mode: int = 0o600) -> None:
    e2e.home.mkdir(mode=0o700, exist_ok=True)
    e2e.credentials.write_bytes(content)
    e2e.credentials.chmod(file_mode)


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
def test_corrupt_or_mistyped_file_is_logged_out_replaced_by_login_removed_by_logout(e2e: E2E, content: bytes) -> None:
    write_credentials(e2e, content)
    status = e2e.cli("status")
    assert status.returncode == 1, status.output
    assert f"Not logged in: the credentials file {client_path(e2e.credentials)} is not valid" in status.stdout
    as_json = e2e.cli("status", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["authenticated"] is False
    assert e2e.credentials.read_bytes() == content  # reading it changed nothing

    run = login(e2e)  # no --force needed
    assert run.returncode == 0, run.output
    assert tomllib.loads(e2e.credentials.read_text())["user"]["username"] == DEMO_USERNAME
    assert private(e2e.credentials)

    write_credentials(e2e, content)
    out = e2e.cli("logout")
    assert out.returncode == 0 and "Logged out" in out.stdout, out.output
    assert not e2e.credentials.exists()


# ------------------------------------------------------------------------------ loose permissions


@posix_modes
@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o666])
def test_loose_credentials_file_is_tightened_with_one_warning(logged_in: E2E, loose: int) -> None:
    e2e = logged_in
    content = e2e.credentials.read_bytes()
    e2e.credentials.chmod(loose)
    run = e2e.cli("status")
    assert run.returncode == 0, run.output
    assert warnings(run) == [f"Warning: {e2e.credentials} {LOOSE_FILE_WARNING}"]
    assert mode(e2e.credentials) == 0o600 and e2e.credentials.read_bytes() == content
    again = e2e.cli("status")
    assert warnings(again) == []  # nothing left to warn about


@posix_modes
def test_loose_credentials_file_is_tightened_by_login_too(logged_in: E2E) -> None:
    e2e = logged_in
    e2e.credentials.chmod(0o644)
    run = login(e2e)
    assert run.returncode == 0 and "Already logged in" in run.stdout
    assert len(warnings(run)) == 1 and mode(e2e.credentials) == 0o600


@posix_modes
@pytest.mark.parametrize("loose", [0o755, 0o750, 0o777])
def test_loose_home_folder_is_tightened_with_one_warning(logged_in: E2E, loose: int) -> None:
    e2e = logged_in
    content = e2e.credentials.read_bytes()
    e2e.home.chmod(loose)
    run = e2e.cli("status")
    assert run.returncode == 0, run.output
    assert warnings(run) == [f"Warning: {e2e.home} was accessible by other users; its permissions were set to 0700."]
    assert mode(e2e.home) == 0o700 and e2e.credentials.read_bytes() == content


@posix_modes
def test_loose_home_folder_is_tightened_by_login_with_one_warning(logged_in: E2E) -> None:
    e2e = logged_in
    e2e.home.chmod(0o755)
    run = login(e2e, "--force")
    assert run.returncode == 0, run.output
    assert len(warnings(run)) == 1 and mode(e2e.home) == 0o700


# ------------------------------------------------------------------------------ symlinks and odd paths


@linux_symlinks
@pytest.mark.parametrize("target_exists", [True, False], ids=["target", "dangling"])
def test_symlinked_credentials_file_is_never_followed(e2e: E2E, tmp_path: Path, target_exists: bool) -> None:
    e2e.home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    if target_exists:
        target.write_text(VALID)
        target.chmod(0o644)
    e2e.credentials.symlink_to(target)
    for args in (["status"], ["status", "--json"], ["logout"]):
        assert_failed_with(e2e.cli(*args), FILE_MESSAGE)
    for extra in ([], ["--force"]):
        assert_failed_with(login(e2e, *extra), FILE_MESSAGE)
    assert no_requests(e2e)
    assert e2e.credentials.is_symlink()
    if target_exists:
        assert target.read_text() == VALID and mode(target) == 0o644
    else:
        assert not target.exists()
    assert sorted(p.name for p in e2e.home.iterdir()) == ["credentials"]  # nothing written beside it


@linux_symlinks
def test_symlinked_lock_file_is_never_followed(logged_in: E2E, tmp_path: Path) -> None:
    e2e = logged_in
    lock = e2e.home / "credentials.lock"
    lock.unlink()
    target = tmp_path / "lock-target"
    lock.symlink_to(target)
    before = snapshot(e2e.credentials)
    for args in (["status"], ["logout"]):
        assert_failed_with(e2e.cli(*args), FILE_MESSAGE)
    assert_failed_with(login(e2e, "--force"), FILE_MESSAGE)
    assert no_requests(e2e)
    assert not target.exists() and lock.is_symlink()
    assert snapshot(e2e.credentials) == before
    assert sorted(p.name for p in e2e.home.iterdir()) == ["credentials", "credentials.lock"]


@pytest.mark.parametrize("server_from", ["SPEC_KITTY_SAAS_URL", "no setting"])
def test_home_folder_that_is_a_file(e2e: E2E, server_from: str) -> None:
    e2e.home.write_text("not a folder\n")
    env = {} if server_from == "SPEC_KITTY_SAAS_URL" else {"SPEC_KITTY_SAAS_URL": ""}  # then config.toml is read
    for args in (["status"], ["logout"]):
        run = e2e.cli(*args, **env)
        assert_failed_with(run, FILE_MESSAGE)
        assert "not a directory" in run.stderr.lower()  # Windows: "<home> is not a directory"
    assert_failed_with(login(e2e, **env), FILE_MESSAGE)
    assert_failed_with(login(e2e, "--force", "--server", e2e.server.url, **env), FILE_MESSAGE)
    assert no_requests(e2e)
    assert e2e.home.read_text() == "not a folder\n"


def test_config_file_that_is_not_toml_blocks_only_what_needs_it(logged_in: E2E) -> None:
    """Issue 13.1: logout and offline status warn and go on; login --server works; a plain login names the line."""
    e2e = logged_in
    config = e2e.home / "config.toml"
    config.write_text("[sync\nserver_url = ")
    nothing_else = {"SPEC_KITTY_SAAS_URL": ""}  # so config.toml is where the URL would come from
    cause = "(not valid TOML at line 1, column 6: expected ']' at the end of a table declaration)"
    warning = f"Warning: The config file {client_path(config)} cannot be read {cause}; it was ignored."

    status = e2e.cli("status", "--json", **nothing_else)
    assert status.returncode == 0, status.output
    assert json.loads(status.stdout)["username"] == DEMO_USERNAME and warnings(status) == [warning]
    assert e2e.cli("status", **nothing_else).returncode == 0

    plain = login(e2e, "--force", **nothing_else)
    assert_failed_with(plain, f"Error: The config file {client_path(config)} cannot be read {cause}; fix or remove it.")
    assert no_requests(e2e)

    explicit = login(e2e, "--force", "--server", e2e.server.url, **nothing_else)
    assert explicit.returncode == 0 and warnings(explicit) == [warning], explicit.output

    out = e2e.cli("logout", **nothing_else)
    assert out.returncode == 0 and "Logged out" in out.stdout and warnings(out) == [warning], out.output
    assert not e2e.credentials.exists()
    assert config.read_text() == "[sync\nserver_url = "  # never touched


def test_unknown_log_level_gets_one_warning(e2e: E2E) -> None:
    run = e2e.cli("status", SPEC_KITTY_LOG_LEVEL="chatty")
    assert run.returncode == 1
    assert warnings(run) == [
        "Warning: SPEC_KITTY_LOG_LEVEL='chatty' is not one of DEBUG, INFO, WARNING, ERROR; using WARNING."]


@pytest.mark.parametrize("where", ["SPEC_KITTY_SAAS_URL", "config.toml"])
def test_http_url_names_where_it_came_from(e2e: E2E, where: str) -> None:
    url = e2e.server.url.replace("https://", "http://")
    if where == "config.toml":
        e2e.home.mkdir(mode=0o700)
        (e2e.home / "config.toml").write_text(f'[sync]\nserver_url = "{url}"\n')
        run, source = login(e2e, SPEC_KITTY_SAAS_URL=""), f"[sync] server_url in {client_path(e2e.home / 'config.toml')}"
    else:
        run, source = login(e2e, SPEC_KITTY_SAAS_URL=url), "SPEC_KITTY_SAAS_URL"
    assert_failed_with(run, f"HTTPS is required: the server URL from {source} must start with https:// (got http://).")
    assert no_requests(e2e) and not e2e.credentials.exists()


# ------------------------------------------------------------------------------ a busy lock

HOLDER = """
import sys, time, filelock
lock = filelock.FileLock(sys.argv[1], mode=0o600)
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_lock_held_by_another_process_fails_after_the_bounded_wait(logged_in: E2E) -> None:
    e2e = logged_in
    before = snapshot(e2e.credentials)
    holder = subprocess.Popen([PYTHON, "-c", HOLDER, client_path(e2e.home / "credentials.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        run = login(e2e, "--force")
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert_failed_with(run, f"Another spec-kitty process held the credentials lock {client_path(e2e.home / 'credentials.lock')}")
    # 20 s of waiting; the upper bound is a hang guard, wider for Wine's slow start-ups
    assert 9 < elapsed < (25 if not WINDOWS_CLIENT else 60), f"{elapsed:.1f} s"
    assert snapshot(e2e.credentials) == before
    assert [p.name for p in e2e.home.iterdir() if p.name.startswith(".credentials.tmp")] == []
    # the lock's holder is gone (the OS released its lock): the next login works
    assert login(e2e, "--force").returncode == 0


# ------------------------------------------------------------------------------ server URLs


@pytest.mark.parametrize("where", ["--server", "SPEC_KITTY_SAAS_URL", "config.toml"])
def test_server_url_with_a_password_is_refused_and_never_echoed(e2e: E2E, where: str) -> None:
    password = "Hunter2-url-secret"
    e2e.secrets.add(password)
    url = e2e.server.url.replace("https://", f"https://alice:{password}@")
    if where == "--server":
        run = login(e2e, "--server", url)
    elif where == "SPEC_KITTY_SAAS_URL":
        run = login(e2e, SPEC_KITTY_SAAS_URL=url)
    else:
        e2e.home.mkdir(mode=0o700)
        (e2e.home / "config.toml").write_text(f'[sync]\nserver_url = "{url}"\n')
        run = login(e2e, SPEC_KITTY_SAAS_URL="")
    assert_failed_with(run, "must not contain a user name or password")
    assert password not in run.output and "alice" not in run.output
    assert no_requests(e2e) and not e2e.credentials.exists()


# Templates over the reference server's own URL where the fault allows it (``{url}``, ``{port}``), so
# that "no request" is a real claim: a client that let the URL through (urlsplit silently drops tabs
# and newlines, for one) would reach this server and be counted. The rest cannot name it at all.
NOT_URLS = {
    "words": "not a url",
    "scheme only": "https://",
    "no host": "https:///api",
    "space in host": "https://127.0.0 .1:{port}",
    "bad port": "https://127.0.0.1:99999",
    "port not a number": "https://127.0.0.1:https",
    "broken IPv6": "https://[::1",
    "ftp": "{ftp}",
    "query": "{url}/?next=evil",
    "fragment": "{url}/#top",
    "tab": "https://127.0.\t0.1:{port}",
    "newline": "{url}\n/api",
}


@pytest.mark.parametrize("template", list(NOT_URLS.values()), ids=list(NOT_URLS))
def test_server_url_that_is_not_a_usable_url_is_refused_before_any_request(e2e: E2E, template: str) -> None:
    url = template.format(url=e2e.server.url, port=e2e.server.url.rsplit(":", 1)[1],
                          ftp=e2e.server.url.replace("https://", "ftp://"))
    run = login(e2e, "--server", url)
    assert run.returncode == 1, run.output
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "URL" in last, run.stderr
    assert no_requests(e2e) and not e2e.credentials.exists()


# ------------------------------------------------------------------------------ usernames and passwords


@pytest.mark.parametrize("username", ["", "   ", "bad\x01name"], ids=["empty", "blank", "control character"])
def test_unusable_username_is_refused_before_any_request(e2e: E2E, username: str) -> None:
    run = e2e.login(username, DEMO_PASSWORD)
    assert run.returncode == 1, run.output
    assert "username" in run.stderr.splitlines()[-1]
    assert no_requests(e2e) and not e2e.credentials.exists()


@pytest.mark.parametrize("stdin", ["\n", ""], ids=["empty line", "no input"])
def test_missing_password_on_stdin_is_refused_before_any_request(e2e: E2E, stdin: str) -> None:
    run = e2e.cli("login", "-u", DEMO_USERNAME, "--password-stdin", input=stdin)
    assert run.returncode == 1, run.output
    assert "password" in run.stderr.splitlines()[-1].lower()
    assert no_requests(e2e) and not e2e.credentials.exists()


def test_password_with_non_ascii_and_control_characters_logs_in(e2e: E2E) -> None:
    username = "zoë.ünïcødé@example.test"
    password = "pässwörd ✓ 猫\t\x01\x1b[31m\x7f\u00a0end"
    e2e.server.create_user(username, password)
    run = e2e.login(username, password)
    assert run.returncode == 0, run.output
    assert f"Logged in as {username} at {e2e.server.url}." in run.stdout
    status = e2e.cli("status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["username"] == username
    assert password not in e2e.credentials.read_text(encoding="utf-8")
    wrong = e2e.login(username, password[:-1], "--force")  # one character off: refused as usual
    assert_failed_with(wrong, "Invalid username or password")


# ------------------------------------------------------------------------------ as a real non-root user

NOBODY = 65534
_SITE = sysconfig.get_paths()["purelib"]  # the venv's site-packages: kitty-auth (editable) and its deps
_BOOT = (
    "import site, sys\n"
    f"site.addsitedir({_SITE!r})\n"
    "sys.argv[0] = 'kitty-auth'\n"
    "from kitty_auth.entrypoints.cli import main\n"
    "main()\n"
)


def _as_nobody() -> list[str]:
    if shutil.which("setpriv") is None:
        pytest.fail("running as root: these tests need setpriv (util-linux) to become an unprivileged user")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _nobody_python() -> str:
    """An interpreter of our Python version that the unprivileged user can run.

    The venv's interpreter normally qualifies. Here it is a symlink into /root/.pyenv (0700), which
    nobody cannot enter; then the system's python3.X (same version, same ABI for the venv's compiled
    wheels) runs the very same installed package, through the venv's site-packages.
    """
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if not os.path.exists(candidate):
            continue
        probe = subprocess.run(
            [*_as_nobody(), candidate, "-c", _BOOT.replace("main()\n", "print(sys.version)\n")],
            capture_output=True, text=True, cwd="/", timeout=HANG_LIMIT, env={"PATH": "/usr/bin:/bin"})
        if probe.returncode != 0:
            continue
        # Our own interpreter must be exactly itself (a binary whose libpython it cannot reach may load
        # another one); a system interpreter must be the same X.Y, so the venv's wheels fit it.
        wanted = sys.version if candidate == sys.executable else f"{version}."
        if probe.stdout.startswith(wanted):
            return candidate
    pytest.fail(f"no Python {version} that user {NOBODY} can run (the venv's is not reachable)")


@pytest.fixture
def unprivileged(e2e: E2E) -> Iterator[tuple[Path, callable]]:
    """(a folder every user can enter, run(home, *args, input=...)) with the CLI run as a non-root user."""
    if os.geteuid() != 0:
        prefix, python, uid = [], sys.executable, os.geteuid()
    else:
        prefix, python, uid = _as_nobody(), _nobody_python(), NOBODY
    base = Path(tempfile.mkdtemp(prefix="kitty-auth-unprivileged-"))
    base.chmod(0o755)  # pytest's tmp_path lives in a 0700 folder the other user cannot enter
    os.chown(base, uid, -1)  # the user's own folder, like their home directory
    ca = base / "ca.pem"
    shutil.copyfile(e2e.server.ca_path, ca)
    ca.chmod(0o644)

    def run(home: Path, *args: str, input: str | None = None) -> Run:
        proc = subprocess.run([*prefix, python, "-c", _BOOT, "auth", *args], input=input, capture_output=True,
                              text=True, cwd=base, timeout=HANG_LIMIT,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              env=e2e.env(SPEC_KITTY_HOME=str(home), SSL_CERT_FILE=str(ca), HOME=str(base)))
        return e2e._record(Run(list(args), proc.returncode, proc.stdout, proc.stderr))

    run.uid = uid  # type: ignore[attr-defined]
    try:
        yield base, run
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _copy_session(e2e: E2E, home: Path, uid: int, file_owner: int | None = None) -> bytes:
    """Put a real session (from a root login) into `home`, owned by `file_owner` (default: `uid`)."""
    assert login(e2e).returncode == 0
    home.mkdir(mode=0o700, exist_ok=True)
    content = e2e.credentials.read_bytes()
    (home / "credentials").write_bytes(content)
    (home / "credentials").chmod(0o600)
    os.chown(home / "credentials", file_owner if file_owner is not None else uid, -1)
    return content


@posix_users
def test_unprivileged_user_can_log_in_status_and_log_out(e2e: E2E, unprivileged) -> None:
    base, run = unprivileged
    home = base / "home"
    e2e.secrets.add(DEMO_PASSWORD)
    assert run(home, "login", "-u", DEMO_USERNAME, "--password-stdin", input=DEMO_PASSWORD + "\n").returncode == 0
    assert os.stat(home / "credentials").st_uid == run.uid and mode(home / "credentials") == 0o600
    tokens = tomllib.loads((home / "credentials").read_text())["tokens"]
    e2e.secrets.update((tokens["access"], tokens["refresh"]))  # the user's tokens join the leak check
    assert run(home, "status").returncode == 0
    assert run(home, "logout").returncode == 0 and not (home / "credentials").exists()


@posix_users
def test_unwritable_home_of_the_user_fails_login_and_writes_nothing(e2e: E2E, unprivileged) -> None:
    base, run = unprivileged
    home = base / "home"
    home.mkdir()
    os.chown(home, run.uid, -1)
    home.chmod(0o555)  # the user made it read-only
    e2e.secrets.add(DEMO_PASSWORD)
    result = run(home, "login", "-u", DEMO_USERNAME, "--password-stdin", input=DEMO_PASSWORD + "\n")
    assert_failed_with(result, FILE_MESSAGE)
    assert warnings(result) == [f"Warning: {home} was accessible by other users; its permissions were set to 0500."]
    assert list(home.iterdir()) == []
    assert no_requests(e2e)  # the lock is taken before the password is sent: it never left the machine
    assert mode(home) == 0o500, "the user's read-only home was made writable"


@posix_users
def test_home_in_a_folder_the_user_cannot_write_fails_login(e2e: E2E, unprivileged) -> None:
    base, run = unprivileged
    parent = base / "not-mine"
    parent.mkdir(mode=0o755)  # root's
    e2e.secrets.add(DEMO_PASSWORD)
    result = run(parent / "spec-kitty", "login", "-u", DEMO_USERNAME, "--password-stdin", input=DEMO_PASSWORD + "\n")
    assert_failed_with(result, FILE_MESSAGE)
    assert list(parent.iterdir()) == []
    assert no_requests(e2e)  # the password never left the machine


@posix_users
def test_credentials_file_that_cannot_be_removed_fails_logout(e2e: E2E, unprivileged) -> None:
    base, run = unprivileged
    home = base / "home"
    content = _copy_session(e2e, home, run.uid)  # the user's file, in a folder of root's
    home.chmod(0o755)
    status = run(home, "status")
    assert status.returncode == 0, status.output  # readable: the session is usable
    assert warnings(status) == [f"Warning: {home} is accessible by other users; run `chmod go-rwx {home}`."]
    result = run(home, "logout")
    assert_failed_with(result, FILE_MESSAGE)
    assert (home / "credentials").read_bytes() == content


@posix_users
def test_credentials_file_the_user_cannot_read(e2e: E2E, unprivileged) -> None:
    base, run = unprivileged
    home = base / "home"
    content = _copy_session(e2e, home, run.uid, file_owner=0)  # root's 0600 file in the user's folder
    os.chown(home, run.uid, -1)
    assert_failed_with(run(home, "status"), FILE_MESSAGE)
    e2e.secrets.add(DEMO_PASSWORD)
    for extra in ([], ["--force"]):
        login = run(home, "login", "-u", DEMO_USERNAME, "--password-stdin", *extra, input=DEMO_PASSWORD + "\n")
        assert_failed_with(login, FILE_MESSAGE)
    assert (home / "credentials").read_bytes() == content and mode(home / "credentials") == 0o600
    assert e2e.server.stats()["requests"] == {TOKEN_PATH: 1}  # root's login only: none from the user
    out = run(home, "logout")  # the user may remove a file from their own folder
    assert out.returncode == 0 and not (home / "credentials").exists(), out.output


# ------------------------------------------------------------------------------ the leak check itself


def test_the_leak_check_catches_a_token_printed_by_a_subprocess(logged_in: E2E) -> None:
    """Guards the harness: a run that prints a stored token must fail the e2e teardown."""
    e2e = logged_in
    e2e.library("import kitty_auth; print(kitty_auth.CredentialStore().load().tokens.refresh)")
    with pytest.raises(AssertionError, match="leaked"):
        e2e.assert_no_leaks()
    e2e.outputs.pop()  # take the deliberate leak back out, so the real teardown check passes
