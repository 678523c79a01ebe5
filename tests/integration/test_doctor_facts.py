"""`auth doctor`'s fact gathering on a real file system and real processes (``adapters/doctor_facts.py``,
``TomlCredentialRepository.probe_lock``/``leftover_files``, ``tls_trust.inspect_trust``): what it finds,
and that it changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from kitty_auth.adapters.doctor_facts import FileSystemDoctorFacts
from kitty_auth.adapters.settings import load_settings
from kitty_auth.adapters.tls_trust import inspect_trust
from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.doctor import LocalFacts, PathKind
from kitty_auth.domain.model import Credentials, TokenPair
from kitty_auth.testing import make_jwt

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions, flock and signals")
SERVER = "https://auth.example.test"


def session(user: str = "user@example.com", server: str = SERVER) -> Credentials:
    now = datetime.now(UTC)
    tokens = TokenPair.issued(make_jwt(iat=now, lifetime=timedelta(minutes=15)),
                              make_jwt(iat=now, lifetime=timedelta(days=7), kind="refresh"), now)
    return Credentials(tokens=tokens, username=user, server_url=server)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "spec-kitty"


def facts(home: Path, **env: str) -> LocalFacts:
    environment = {"SPEC_KITTY_HOME": str(home), **env}
    settings = load_settings(environment)
    return FileSystemDoctorFacts(settings, TomlCredentialRepository(home / "credentials"), environment).local()


def mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o777


# ------------------------------------------------------------------------------ home and file


def test_nothing_stored_yet_creates_nothing(home: Path) -> None:
    found = facts(home)
    assert found.home.kind is PathKind.MISSING and found.credentials.file.kind is PathKind.MISSING
    assert found.lock.file.kind is PathKind.MISSING
    assert not home.exists()


@posix_only
def test_loose_modes_are_reported_and_left_as_they_are(home: Path) -> None:
    TomlCredentialRepository(home / "credentials").save(session())
    os.chmod(home, 0o755)
    os.chmod(home / "credentials", 0o644)
    found = facts(home)
    assert found.home.mode == 0o755 and found.home.mine is True and found.home.writable is True
    assert found.credentials.file.mode == 0o644 and found.credentials.file.kind is PathKind.FILE
    assert [s.credentials.username for s in found.credentials.sessions] == ["user@example.com"]
    assert mode(home) == 0o755 and mode(home / "credentials") == 0o644  # the doctor reports; it does not fix


@posix_only
def test_a_symlink_at_the_file_or_the_lock_is_reported_never_followed(home: Path, tmp_path: Path) -> None:
    TomlCredentialRepository(home / "credentials").save(session())
    target = tmp_path / "elsewhere"
    target.write_text("x = 1\n")
    (home / "credentials").unlink()
    (home / "credentials").symlink_to(target)
    (home / "credentials.lock").unlink()
    (home / "credentials.lock").symlink_to(tmp_path / "nowhere")
    found = facts(home)
    assert found.credentials.file.kind is PathKind.SYMLINK and found.credentials.file.link_target == str(target)
    assert found.credentials.sessions == () and found.credentials.usable is False
    assert found.lock.file.kind is PathKind.SYMLINK and found.lock.held is None
    assert not (tmp_path / "nowhere").exists()


@posix_only
def test_a_symlinked_home_is_looked_through(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "spec-kitty"
    TomlCredentialRepository(real / "credentials").save(session())
    home.symlink_to(real)
    found = facts(home)
    assert found.home.kind is PathKind.DIRECTORY and found.home.link_target == str(real)
    assert found.home.mode == 0o700 and len(found.credentials.sessions) == 1


@posix_only
def test_a_file_of_another_user_is_not_yours(home: Path) -> None:
    TomlCredentialRepository(home / "credentials").save(session())
    try:
        os.chown(home / "credentials", 54321, -1)
    except PermissionError:
        pytest.skip("chown to another user needs root")
    found = facts(home)
    assert found.credentials.file.mine is False and found.credentials.file.owner == "uid 54321"


def test_a_file_that_does_not_parse_and_the_files_saves_leave_behind(home: Path) -> None:
    repo = TomlCredentialRepository(home / "credentials")
    repo.save(session())
    (home / ".credentials.tmp-0123abcd").write_bytes(b"half a save")
    (home / "credentials").write_text("this is [not toml\n")
    repo.save(session("second@example.com"))  # keeps the unparsable file aside (and removes the temporary one)
    (home / ".credentials.tmp-feedbeef").write_bytes(b"half a save")
    (home / "credentials").write_text("[tokens\n")
    found = facts(home).credentials
    assert found.parse_error is not None and "not valid TOML" in found.parse_error
    assert found.temporary_files == (str(home / ".credentials.tmp-feedbeef"),)
    assert found.kept_aside == (str(home / "credentials.unparsable.1"),)
    assert (home / ".credentials.tmp-feedbeef").exists()  # the doctor deletes nothing


def test_every_stored_session_is_read_active_first(home: Path) -> None:
    repo = TomlCredentialRepository(home / "credentials")
    repo.save(session("first@example.com"))
    repo.save(session("second@example.com", "https://other.example.test"))
    found = facts(home).credentials.sessions
    assert [(s.credentials.username, s.active) for s in found] == [("second@example.com", True),
                                                                   ("first@example.com", False)]


# ------------------------------------------------------------------------------ config.toml and the server URL


def test_the_server_url_comes_from_the_environment_config_stored_session_or_default(home: Path) -> None:
    home.mkdir(mode=0o700)
    assert facts(home).config.login_server_source == "the default"
    TomlCredentialRepository(home / "credentials").save(session(server="https://stored.example.test"))
    config = facts(home).config
    assert (config.login_server, config.login_server_source) == ("https://stored.example.test",
                                                                 "the active stored session")
    (home / "config.toml").write_text('[sync]\nserver_url = "https://configured.example.test"\n')
    config = facts(home).config
    assert config.login_server == "https://configured.example.test"
    assert config.login_server_source == f"[sync] server_url in {home / 'config.toml'}"
    config = facts(home, SPEC_KITTY_SAAS_URL="https://env.example.test").config
    assert (config.login_server, config.login_server_source) == ("https://env.example.test", "SPEC_KITTY_SAAS_URL")
    assert config.configured_url == "https://configured.example.test"  # still read, to say it is overridden


def test_a_broken_config_toml_is_found_even_while_the_environment_names_the_server(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("[sync\n")
    config = facts(home).config
    assert config.error is not None and "not valid TOML" in config.error
    assert config.login_server is None and "fix or remove it" in config.login_server_error
    config = facts(home, SPEC_KITTY_SAAS_URL=SERVER).config
    assert config.error is not None and config.login_server == SERVER and config.login_server_error is None


def test_a_server_url_login_refuses_is_its_error(home: Path) -> None:
    config = facts(home, SPEC_KITTY_SAAS_URL="http://plain.example.test").config
    assert config.login_server is None and "HTTPS is required" in config.login_server_error


def test_the_token_variable_is_seen_set_or_not_never_read_further(home: Path) -> None:
    assert facts(home, SPEC_KITTY_SAAS_TOKEN="abc.def.ghi").token_in_env is True
    assert facts(home, SPEC_KITTY_SAAS_TOKEN="  ").token_in_env is False
    assert facts(home).token_in_env is False


# ------------------------------------------------------------------------------ the lock

HOLDER = textwrap.dedent(
    """
    import sys
    from kitty_auth.adapters.toml_repository import TomlCredentialRepository
    with TomlCredentialRepository(sys.argv[1]).lock():  # the real lock: it writes its holder's PID
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


@posix_only
def test_a_lock_held_by_another_process_names_it_and_a_killed_holder_s_pid_is_dead(home: Path) -> None:
    TomlCredentialRepository(home / "credentials").save(session())
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home / "credentials")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        lock = facts(home).lock
        assert lock.held is True and lock.holder_pid == holder.pid
        assert lock.recorded_pid == holder.pid and lock.recorded_alive is True
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # killed while holding: its PID stays in the file
        holder.wait()
    lock = facts(home).lock
    assert lock.held is False and lock.holder_pid is None
    assert lock.recorded_pid == holder.pid and lock.recorded_alive is False


@posix_only
def test_probing_leaves_the_lock_free_and_sees_it_held_by_any_holder(home: Path) -> None:
    repo = TomlCredentialRepository(home / "credentials")
    repo.save(session())
    lock = facts(home).lock
    assert lock.held is False and lock.recorded_pid is None
    with repo.lock():  # free right after the probe: nothing of the probe's is left on it
        assert facts(home).lock.held is True  # this process holds it: another descriptor sees it held


# ------------------------------------------------------------------------------ TLS trust


@pytest.fixture
def no_tls_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return monkeypatch


def test_ssl_cert_file_counts_its_certificates_and_tells_a_ca_from_a_server_s_own(
        tmp_path: Path, no_tls_env: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    no_tls_env.setenv("SSL_CERT_FILE", str(bundle))
    trust = inspect_trust()
    assert trust.cert_file is not None and (trust.cert_file.certificates, trust.cert_file.ca_certificates) == (1, 1)
    assert trust.context_error is None
    leaf = tmp_path / "leaf.pem"
    ca.issue_cert("auth.example.test").cert_chain_pems[0].write_to_path(str(leaf))
    no_tls_env.setenv("SSL_CERT_FILE", str(leaf))
    trust = inspect_trust()
    assert (trust.cert_file.certificates, trust.cert_file.ca_certificates) == (1, 0)


def test_ssl_cert_file_missing_or_not_pem(tmp_path: Path, no_tls_env: pytest.MonkeyPatch) -> None:
    no_tls_env.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    trust = inspect_trust()
    assert trust.cert_file.kind is PathKind.MISSING and trust.context_error is None  # ignored, as by connections
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    no_tls_env.setenv("SSL_CERT_FILE", str(garbage))
    trust = inspect_trust()
    assert trust.cert_file.error == "not a PEM file of certificates"
    assert trust.context_error is not None and "SSL_CERT_FILE" in trust.context_error  # what connections meet


def test_ssl_cert_dir_counts_the_names_openssl_looks_up(tmp_path: Path, no_tls_env: pytest.MonkeyPatch) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "corp-ca.pem").write_text("not looked up under this name\n")
    no_tls_env.setenv("SSL_CERT_DIR", str(certs))
    assert inspect_trust().cert_dir.certificates == 0
    (certs / "a1b2c3d4.0").write_text("looked up\n")
    assert inspect_trust().cert_dir.certificates == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the distribution's CA bundle is Linux's")
def test_the_system_bundle_is_counted(no_tls_env: pytest.MonkeyPatch) -> None:
    trust = inspect_trust()
    if trust.system_bundle is None:
        pytest.skip("this machine has no CA bundle")
    assert trust.system_certificates and trust.system_certificates > 0 and trust.os_verifier is False
