"""`auth doctor`'s judging (domain/doctor.py) with facts written by hand and the in-memory fakes of its ports."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from kitty_auth.domain.accounts import StoredSession
from kitty_auth.domain.doctor import (
    SKEW_WARNING_SECONDS,
    SLOW_ANSWER_MS,
    CertificateSource,
    Check,
    CheckSession,
    ConfigFacts,
    CredentialsFacts,
    Doctor,
    LockFacts,
    PathFacts,
    PathKind,
    ServerFacts,
    SessionProof,
    Status,
    TrustFacts,
    judge_clock,
    judge_config,
    judge_credentials_file,
    judge_home,
    judge_leftovers,
    judge_lock,
    judge_server,
    judge_server_url,
    judge_session_proof,
    judge_sessions,
    judge_token_variable,
    judge_trust,
    servers_to_probe,
)
from kitty_auth.domain.errors import (
    CredentialsLockTimeoutError,
    InvalidServerUrlError,
    NetworkError,
    NotAuthenticatedError,
    SessionExpiredError,
    TLSVerificationError,
    TokenRejectedError,
)
from kitty_auth.domain.model import Credentials, LoginMethod, OAuthClient, TokenPair
from kitty_auth.domain.oauth_errors import MetadataUnavailableError
from kitty_auth.domain.use_cases import EnsureFreshToken, Login
from kitty_auth.testing import (
    FakeClock,
    FakeDoctorFacts,
    FakeOAuthServer,
    FakeServerProbe,
    FakeTokenGateway,
    InMemoryCredentialRepository,
    healthy_machine,
)

SERVER = "https://auth.example.test"
OTHER = "https://other.example.test"
USER, PASSWORD = "user@example.com", "s3cret"
HOME = "/home/user/.spec-kitty"


def directory(**kw: object) -> PathFacts:
    return replace(PathFacts(HOME, PathKind.DIRECTORY, mode=0o700, owner="user", mine=True, writable=True), **kw)


def file(path: str = f"{HOME}/credentials", **kw: object) -> PathFacts:
    return replace(PathFacts(path, PathKind.FILE, mode=0o600, owner="user", mine=True, writable=True), **kw)


def creds(server: str = SERVER, user: str = USER, *, clock: FakeClock, access: float = 900,
          refresh: float | None = 7 * 86400, oauth: bool = False) -> Credentials:
    now = clock.now()
    tokens = TokenPair(access="at-secret-" + user, refresh="rt-secret-" + user,
                       access_expires_at=now + timedelta(seconds=access),
                       refresh_expires_at=None if refresh is None else now + timedelta(seconds=refresh))
    client = OAuthClient("cli_native", server + "/oauth/token") if oauth else None
    return Credentials(tokens=tokens, username=user, server_url=server, oauth=client,
                       login_method=LoginMethod.WEB if oauth else LoginMethod.PASSWORD)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ------------------------------------------------------------------------------ home directory


def test_a_private_home_of_yours_is_fine_and_a_symlinked_one_too() -> None:
    assert judge_home(directory()).status is Status.OK
    linked = judge_home(directory(link_target="/data/dotfiles/spec-kitty"))
    assert linked.status is Status.OK and "a symlink to /data/dotfiles/spec-kitty" in linked.found


def test_a_home_not_created_yet_is_fine() -> None:
    check = judge_home(PathFacts(HOME, PathKind.MISSING))
    assert check.status is Status.OK and "first login creates it" in check.found


def test_a_home_symlink_to_nothing_is_a_problem_fixed_by_creating_its_target_or_removing_it() -> None:
    check = judge_home(PathFacts(HOME, PathKind.MISSING, link_target="/gone"))
    assert check.status is Status.PROBLEM
    assert "mkdir -m 700 /gone" in check.fix and f"rm {HOME}" in check.fix


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701])
def test_a_home_open_to_others_is_a_warning_fixed_with_chmod_go_rwx(mode: int) -> None:
    check = judge_home(directory(mode=mode))
    assert check.status is Status.WARNING and f"{mode:04o}" in check.found
    assert check.fix.startswith(f"chmod go-rwx {HOME}")


def test_a_shared_sticky_home_is_not_chmod_ed_but_moved() -> None:
    check = judge_home(directory(mode=0o1777, sticky=True))
    assert check.status is Status.WARNING and "SPEC_KITTY_HOME" in check.fix and "chmod" not in check.fix


def test_a_home_of_another_user_or_not_writable_is_a_problem() -> None:
    other = judge_home(directory(mine=False, owner="root"))
    assert other.status is Status.PROBLEM and "belongs to root" in other.found
    assert other.fix == f'sudo chown -R "$USER" {HOME}'
    locked = judge_home(directory(writable=False, mode=0o500))
    assert locked.status is Status.PROBLEM and locked.fix == f"chmod u+rwx {HOME}"


def test_a_home_that_is_a_file_or_cannot_be_inspected_is_a_problem() -> None:
    assert judge_home(directory(kind=PathKind.FILE)).fix == f"move it away (mv {HOME} {HOME}.old)"
    check = judge_home(PathFacts(HOME, PathKind.MISSING, error="Permission denied"))
    assert check.status is Status.PROBLEM and "Permission denied" in check.found


# ------------------------------------------------------------------------------ credentials file


def test_a_private_file_of_yours_is_fine(clock: FakeClock) -> None:
    check = judge_credentials_file(CredentialsFacts(file(), sessions=(StoredSession(creds(clock=clock), True),)))
    assert check.status is Status.OK and "0600" in check.found and "1 stored session" in check.found


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_other_users_can_read_is_a_problem_fixed_with_chmod_600(mode: int) -> None:
    check = judge_credentials_file(CredentialsFacts(file(mode=mode)))
    assert check.status is Status.PROBLEM and f"{mode:04o}" in check.found
    assert check.fix.startswith(f"chmod 600 {HOME}/credentials")


def test_a_symlink_at_the_file_is_a_problem_fixed_by_rm_never_chmod() -> None:
    check = judge_credentials_file(CredentialsFacts(PathFacts(f"{HOME}/credentials", PathKind.SYMLINK,
                                                              link_target="/elsewhere/creds")))
    assert check.status is Status.PROBLEM and "/elsewhere/creds" in check.found
    assert check.fix.startswith(f"rm {HOME}/credentials ")
    assert "chmod 600" not in check.fix


def test_a_file_of_another_user_is_a_problem_fixed_with_chown() -> None:
    check = judge_credentials_file(CredentialsFacts(file(mine=False, owner="root")))
    assert check.status is Status.PROBLEM and check.fix == f'sudo chown "$USER" {HOME}/credentials'


def test_a_file_that_does_not_parse_is_a_problem_fixed_by_login() -> None:
    check = judge_credentials_file(CredentialsFacts(file(), parse_error="not valid TOML at line 1, column 3"))
    assert check.status is Status.PROBLEM and "not valid TOML at line 1" in check.found
    assert check.fix.startswith("spec-kitty auth login") and "unparsable" in check.fix


def test_a_file_that_cannot_be_read_or_is_not_a_file_is_a_problem() -> None:
    unreadable = judge_credentials_file(CredentialsFacts(file(mode=0o000), read_error="Permission denied"))
    assert unreadable.status is Status.PROBLEM and unreadable.fix == f"chmod u+rw {HOME}/credentials"
    fifo = judge_credentials_file(CredentialsFacts(file(kind=PathKind.OTHER)))
    assert fifo.status is Status.PROBLEM and "not a regular file" in fifo.found


def test_no_file_is_fine_here() -> None:
    assert judge_credentials_file(CredentialsFacts(PathFacts(f"{HOME}/credentials", PathKind.MISSING))).status \
        is Status.OK


def test_leftover_temporary_files_and_kept_aside_copies_are_warnings_with_their_paths() -> None:
    assert judge_leftovers(CredentialsFacts(file())).status is Status.OK
    temp = f"{HOME}/.credentials.tmp-0123abcd"
    check = judge_leftovers(CredentialsFacts(file(), temporary_files=(temp,)))
    assert check.status is Status.WARNING and temp in check.found and f"rm {temp}" in check.fix
    aside = f"{HOME}/credentials.unparsable.2"
    check = judge_leftovers(CredentialsFacts(file(), kept_aside=(aside,)))
    assert check.status is Status.WARNING and aside in check.found
    assert "look at them" in check.fix and f"rm {aside}" in check.fix


# ------------------------------------------------------------------------------ config.toml and the server URL


CONFIG = f"{HOME}/config.toml"


def test_config_toml_is_optional_and_a_valid_one_names_its_server() -> None:
    assert judge_config(ConfigFacts(CONFIG, exists=False)).status is Status.OK
    check = judge_config(ConfigFacts(CONFIG, exists=True, configured_url=SERVER))
    assert check.status is Status.OK and SERVER in check.found and "overrides" not in check.found
    over = judge_config(ConfigFacts(CONFIG, exists=True, configured_url=SERVER, env_url=OTHER))
    assert "SPEC_KITTY_SAAS_URL overrides it" in over.found


def test_a_broken_config_toml_is_a_problem_unless_the_environment_names_the_server() -> None:
    broken = ConfigFacts(CONFIG, exists=True, error="not valid TOML at line 2, column 1: expected '='")
    check = judge_config(broken)
    assert check.status is Status.PROBLEM and "line 2, column 1" in check.found
    assert check.fix == f"fix or remove {CONFIG}"
    ignored = judge_config(replace(broken, env_url=SERVER))
    assert ignored.status is Status.WARNING and "ignored while SPEC_KITTY_SAAS_URL is set" in ignored.found


def test_the_server_url_check_names_where_the_url_comes_from() -> None:
    check = judge_server_url(ConfigFacts(CONFIG, exists=False, login_server=SERVER,
                                         login_server_source="the active stored session"))
    assert check.status is Status.OK and check.found == f"`login` goes to {SERVER} (from the active stored session)"
    assert check.details == {"server_url": SERVER, "source": "the active stored session"}


def test_a_server_url_login_cannot_use_is_a_problem_with_the_fix_where_it_comes_from() -> None:
    bad_env = judge_server_url(ConfigFacts(CONFIG, exists=False, env_url="http://x", login_server_source=
                                           "SPEC_KITTY_SAAS_URL", login_server_error="HTTPS is required: ..."))
    assert bad_env.status is Status.PROBLEM and bad_env.fix == "give an https:// URL in SPEC_KITTY_SAAS_URL"
    bad_file = judge_server_url(ConfigFacts(CONFIG, exists=True, error="not valid TOML",
                                            login_server_error="The config file cannot be read"))
    assert bad_file.fix == f"fix or remove {CONFIG}"


# ------------------------------------------------------------------------------ lock

LOCK = f"{HOME}/credentials.lock"


def test_a_free_lock_is_fine_and_a_dead_holder_s_pid_is_explained() -> None:
    assert judge_lock(LockFacts(file(LOCK), held=False)).found == f"{LOCK}: free"
    assert judge_lock(LockFacts(PathFacts(LOCK, PathKind.MISSING))).status is Status.OK
    dead = judge_lock(LockFacts(file(LOCK), held=False, recorded_pid=4321, recorded_alive=False))
    assert dead.status is Status.OK and "process 4321, which is no longer running" in dead.found


def test_a_held_lock_names_its_holder_and_how_to_end_it() -> None:
    check = judge_lock(LockFacts(file(LOCK), held=True, holder_pid=1234, recorded_pid=1234, recorded_alive=True))
    assert check.status is Status.WARNING and "held by process 1234" in check.found
    assert "kill 1234" in check.fix and check.details["holder_pid"] == 1234


def test_a_lock_held_by_someone_unknown_says_the_pid_in_the_file_is_dead() -> None:
    check = judge_lock(LockFacts(file(LOCK), held=True, recorded_pid=999, recorded_alive=False))
    assert check.status is Status.WARNING and "999, is not running" in check.found and "fuser" in check.fix


def test_a_symlink_at_the_lock_is_a_problem_fixed_by_rm() -> None:
    check = judge_lock(LockFacts(PathFacts(LOCK, PathKind.SYMLINK, link_target="/tmp/x")))
    assert check.status is Status.PROBLEM and check.fix.startswith(f"rm {LOCK}")


def test_a_lock_whose_state_cannot_be_told_is_skipped() -> None:
    assert judge_lock(LockFacts(file(LOCK), held=None)).status is Status.SKIPPED


# ------------------------------------------------------------------------------ TLS trust

TRUST = TrustFacts(truststore=True, os_verifier=False, system_bundle="/etc/ssl/certs/ca-certificates.crt",
                   system_certificates=140)


def bundle(**kw: object) -> CertificateSource:
    return replace(CertificateSource("SSL_CERT_FILE", "/corp/ca.pem", PathKind.FILE, certificates=2,
                                     ca_certificates=2), **kw)


def test_the_os_store_with_certificates_and_a_good_bundle_are_fine() -> None:
    check = judge_trust(replace(TRUST, cert_file=bundle()))
    assert check.status is Status.OK
    assert "140 CA certificates" in check.found and "SSL_CERT_FILE /corp/ca.pem (2 certificates)" in check.found


def test_an_ssl_cert_file_that_does_not_exist_is_ignored_with_a_warning() -> None:
    check = judge_trust(replace(TRUST, cert_file=bundle(kind=PathKind.MISSING)))
    assert check.status is Status.WARNING and "does not exist: it is ignored" in check.found
    assert "unset SSL_CERT_FILE" in check.fix


def test_an_ssl_cert_file_that_is_not_pem_or_unreadable_is_a_problem() -> None:
    garbage = judge_trust(replace(TRUST, cert_file=bundle(error="not a PEM file of certificates")))
    assert garbage.status is Status.PROBLEM and "every HTTPS connection fails" in garbage.found
    unreadable = judge_trust(replace(TRUST, cert_file=bundle(readable=False)))
    assert unreadable.status is Status.PROBLEM and "cannot be read" in unreadable.found


def test_a_bundle_holding_a_server_certificate_instead_of_a_ca_is_a_warning() -> None:
    check = judge_trust(replace(TRUST, cert_file=bundle(certificates=1, ca_certificates=0)))
    assert check.status is Status.WARNING and "1 of them is not a CA certificate" in check.found


def test_an_ssl_cert_dir_without_hashed_names_needs_a_rehash_and_is_ignored_by_os_verifiers() -> None:
    source = CertificateSource("SSL_CERT_DIR", "/corp/certs", PathKind.DIRECTORY, certificates=0)
    check = judge_trust(replace(TRUST, cert_dir=source))
    assert check.status is Status.WARNING and check.fix == "openssl rehash /corp/certs"
    mac = judge_trust(replace(TRUST, os_verifier=True, cert_dir=replace(source, certificates=3)))
    assert mac.status is Status.WARNING and "not read on this system" in mac.found


def test_no_ca_certificate_at_all_is_a_problem() -> None:
    check = judge_trust(replace(TRUST, system_bundle=None, system_certificates=None))
    assert check.status is Status.PROBLEM and "ca-certificates" in check.fix
    assert judge_trust(replace(TRUST, system_bundle=None, system_certificates=None,
                               cert_file=bundle())).status is Status.OK


def test_an_ssl_context_that_cannot_be_built_is_a_problem() -> None:
    check = judge_trust(replace(TRUST, context_error="The CA bundle named by SSL_CERT_FILE could not be loaded"))
    assert check.status is Status.PROBLEM and "could not be loaded" in check.found


# ------------------------------------------------------------------------------ servers and clocks


def reached(**kw: object) -> ServerFacts:
    return replace(ServerFacts(SERVER, reached=True, status=200, rtt_ms=40, login_method=LoginMethod.WEB), **kw)


def test_a_reached_oauth_or_password_server_is_fine_with_its_round_trip_time() -> None:
    check = judge_server(reached(), ["where `login` goes"])
    assert check.status is Status.OK and "reached over HTTPS in 40 ms" in check.found
    assert "OAuth server" in check.found and check.details["kind"] == "oauth" and check.details["rtt_ms"] == 40
    password = judge_server(reached(status=404, login_method=LoginMethod.PASSWORD), [])
    assert "a password server" in password.found and password.details["kind"] == "password"


@pytest.mark.parametrize(("error", "fix"), [
    (NetworkError("auth.example.test: connection refused"), "check your connection"),
    (TLSVerificationError(), "set SSL_CERT_FILE to that CA's PEM file"),
    (InvalidServerUrlError("HTTPS is required"), "correct the server URL"),
])
def test_a_server_not_reached_is_a_problem_with_login_s_sentence_and_a_fix_for_why(error, fix) -> None:  # noqa: ANN001
    check = judge_server(ServerFacts(SERVER, reached=False, error=error), ["where `login` goes"])
    assert check.status is Status.PROBLEM and str(error) in check.found and fix in check.fix


def test_a_server_whose_metadata_login_cannot_use_is_a_problem_with_login_s_sentence() -> None:
    error = MetadataUnavailableError(503)
    check = judge_server(reached(status=503, login_method=None, kind_error=error), [])
    assert check.status is Status.PROBLEM and str(error) in check.found


def test_a_slow_server_is_a_warning_past_the_threshold_only() -> None:
    assert judge_server(reached(rtt_ms=SLOW_ANSWER_MS), []).status is Status.OK
    check = judge_server(reached(rtt_ms=SLOW_ANSWER_MS + 1), [])
    assert check.status is Status.WARNING and "slow" in check.found


def skewed(seconds: float, clock: FakeClock) -> ServerFacts:
    return reached(server_time=clock.now() + timedelta(seconds=seconds), local_time=clock.now())


def test_clock_skew_up_to_the_threshold_is_fine(clock: FakeClock) -> None:
    check = judge_clock(skewed(SKEW_WARNING_SECONDS, clock))
    assert check.status is Status.OK and check.details["skew_s"] == SKEW_WARNING_SECONDS


@pytest.mark.parametrize(("seconds", "way"), [(SKEW_WARNING_SECONDS + 1, "behind"), (-600, "ahead of")])
def test_clock_skew_past_the_threshold_is_a_warning_that_says_refresh_is_unaffected(
        seconds: int, way: str, clock: FakeClock) -> None:
    check = judge_clock(skewed(seconds, clock))
    assert check.status is Status.WARNING and check.details["skew_s"] == seconds
    assert f"{way} {SERVER}'s" in check.found
    assert "measures token expiries on this machine's clock" in check.found and "other tools" in check.found
    assert "set the clock right" in check.fix


@pytest.mark.parametrize(("seconds", "said"), [(599, "10 minutes"), (61, "61 seconds"), (-7300, "2 hours")])
def test_skew_is_said_to_the_nearest_unit(seconds: int, said: str, clock: FakeClock) -> None:
    assert f" {said} " in judge_clock(skewed(seconds, clock)).found


def test_no_date_header_means_the_skew_is_unknown() -> None:
    assert judge_clock(reached()).status is Status.SKIPPED


def test_each_server_is_probed_once_with_every_reason_to_reach_it(clock: FakeClock) -> None:
    config = ConfigFacts(CONFIG, exists=False, login_server=SERVER, login_server_source="SPEC_KITTY_SAAS_URL")
    sessions = [StoredSession(creds(SERVER + "/", clock=clock), True), StoredSession(creds(OTHER, clock=clock), False)]
    assert servers_to_probe(config, sessions) == [
        (SERVER, ["where `login` goes", f"active session of {USER}"]),
        (OTHER, [f"session of {USER}"]),
    ]


# ------------------------------------------------------------------------------ sessions and the token variable


def stored(*sessions: StoredSession) -> CredentialsFacts:
    return CredentialsFacts(file(), sessions=sessions)


def test_no_session_is_a_problem_unless_the_token_variable_stands_in(clock: FakeClock) -> None:
    none = CredentialsFacts(PathFacts(f"{HOME}/credentials", PathKind.MISSING))
    check = judge_sessions(none, clock.now(), token_in_env=False)
    assert check.status is Status.PROBLEM and check.fix == "spec-kitty auth login"
    assert judge_sessions(none, clock.now(), token_in_env=True).status is Status.OK


def test_each_session_is_listed_with_its_method_and_expiries(clock: FakeClock) -> None:
    active = StoredSession(creds(clock=clock, access=-30), True)  # access expired, refresh valid
    other = StoredSession(creds(OTHER, "bob", clock=clock, refresh=None, oauth=True), False)
    check = judge_sessions(stored(active, other), clock.now(), token_in_env=False)
    assert check.status is Status.OK
    first, second = check.found.split("\n")
    assert first.startswith(f"{USER} at {SERVER} (active, password): access token expired at ")
    assert "(refreshed at the next use)" in first and "refresh token valid until" in first
    assert second.startswith(f"bob at {OTHER} (web): access token valid until")
    assert "refresh token has no expiry" in second
    details = check.details["sessions"]
    assert [d["active"] for d in details] == [True, False] and details[0]["access_expired"] is True
    assert details[1]["refresh_expires_at"] is None and details[1]["login_method"] == "web"


def test_an_expired_active_session_is_a_problem_and_an_expired_other_one_a_warning(clock: FakeClock) -> None:
    gone = creds(clock=clock, access=-100, refresh=-10)
    check = judge_sessions(stored(StoredSession(gone, True)), clock.now(), token_in_env=False)
    assert check.status is Status.PROBLEM and check.fix == f"spec-kitty auth login --server {SERVER}"
    other = judge_sessions(stored(StoredSession(creds(clock=clock), True),
                                  StoredSession(replace(gone, server_url=OTHER), False)), clock.now(), False)
    assert other.status is Status.WARNING
    assert other.fix.startswith(f"spec-kitty auth switch --server {OTHER} --user {USER}")


def test_sessions_of_an_unreadable_file_are_not_judged_twice(clock: FakeClock) -> None:
    check = judge_sessions(CredentialsFacts(file(), parse_error="bad"), clock.now(), token_in_env=False)
    assert check.status is Status.SKIPPED


def test_the_token_variable_overrides_stored_sessions_with_a_warning_never_its_value() -> None:
    assert judge_token_variable(False, 1).status is Status.OK
    check = judge_token_variable(True, 2)
    assert check.status is Status.WARNING and "instead of the 2 stored sessions" in check.found
    assert check.fix == "unset SPEC_KITTY_SAAS_TOKEN to use the stored sessions"
    assert judge_token_variable(True, 0).status is Status.OK


# ------------------------------------------------------------------------------ the session check


def test_the_session_check_is_skipped_unless_asked() -> None:
    check = judge_session_proof(None, token_in_env=False)
    assert check.status is Status.SKIPPED and "--check-session" in check.found


@pytest.mark.parametrize(("error", "fix"), [
    (NotAuthenticatedError(), "spec-kitty auth login"),
    (SessionExpiredError(), "spec-kitty auth login"),
    (TokenRejectedError(), "spec-kitty auth login --force"),
    (NetworkError("host: timed out"), "check your connection, your proxy settings (HTTPS_PROXY) and the server URL"),
    (CredentialsLockTimeoutError("/x/credentials.lock", 20, "process 7"),
     "wait for that process to finish (or end it), then run again"),
])
def test_a_failed_session_check_is_a_problem_with_its_fix(error, fix, clock: FakeClock) -> None:  # noqa: ANN001
    check = judge_session_proof(SessionProof(creds(clock=clock), endpoint="GET /api/v1/me", error=error), False)
    assert check.status is Status.PROBLEM and check.fix == fix


def session_world(clock: FakeClock, *, oauth: bool) -> tuple[InMemoryCredentialRepository, object]:
    repo = InMemoryCredentialRepository()
    if oauth:
        server = FakeOAuthServer(clock=clock)
        session = creds(clock=clock, oauth=True)
        server.valid_access.add(session.tokens.access)
        server.valid_refresh.add(session.tokens.refresh)
        repo.save(session)
        return repo, server
    server = FakeTokenGateway(clock=clock, users={USER: PASSWORD})
    Login(repo, server, clock).execute(SERVER, USER, PASSWORD)
    return repo, server


def check_session(repo, server, clock: FakeClock) -> CheckSession:  # noqa: ANN001
    return CheckSession(repo, EnsureFreshToken(repo, server, clock), server)


def test_a_password_session_is_proved_with_a_ws_token_without_refreshing_a_fresh_token(clock: FakeClock) -> None:
    repo, server = session_world(clock, oauth=False)
    proof = check_session(repo, server, clock).execute()
    assert proof.error is None and proof.endpoint == "POST /api/v1/ws-token/" and proof.refreshed is False
    assert server.calls == ["obtain", "ws_token"]
    assert judge_session_proof(proof, False).status is Status.OK


def test_an_expired_access_token_is_refreshed_first_and_the_new_one_proved(clock: FakeClock) -> None:
    repo, server = session_world(clock, oauth=False)
    before = repo.credentials
    clock.advance(timedelta(minutes=20))
    proof = check_session(repo, server, clock).execute()
    assert proof.error is None and proof.refreshed is True
    assert server.calls == ["obtain", "refresh", "ws_token"]
    assert repo.credentials.tokens.refresh != before.tokens.refresh  # the rotated pair was stored
    check = judge_session_proof(proof, False)
    assert check.status is Status.OK and "after refreshing its access token" in check.found


def test_an_oauth_session_is_proved_with_me(clock: FakeClock) -> None:
    repo, server = session_world(clock, oauth=True)
    proof = check_session(repo, server, clock).execute()
    assert proof.endpoint == "GET /api/v1/me" and proof.identity is not None and server.calls == ["me"]
    assert judge_session_proof(proof, False).found.endswith(f"the server names {server.email}")


def test_a_refresh_the_server_refuses_ends_the_session_as_any_command_would(clock: FakeClock) -> None:
    repo, server = session_world(clock, oauth=False)
    server.valid_refresh.clear()
    clock.advance(timedelta(minutes=20))
    proof = check_session(repo, server, clock).execute()
    assert isinstance(proof.error, SessionExpiredError) and repo.credentials is None
    assert "ws_token" not in server.calls


def test_an_access_token_the_server_refuses_is_reported(clock: FakeClock) -> None:
    repo, server = session_world(clock, oauth=False)
    server.valid_access.clear()
    proof = check_session(repo, server, clock).execute()
    assert isinstance(proof.error, TokenRejectedError)
    assert judge_session_proof(proof, False).found == "POST /api/v1/ws-token/ refused the access token"


def test_no_session_to_check(clock: FakeClock) -> None:
    proof = CheckSession(InMemoryCredentialRepository(), EnsureFreshToken(
        InMemoryCredentialRepository(), FakeTokenGateway(clock=clock), clock), FakeTokenGateway(clock=clock)).execute()
    assert isinstance(proof.error, NotAuthenticatedError)


# ------------------------------------------------------------------------------ the whole doctor


def test_a_healthy_machine_exits_0_and_offline_contacts_no_server(clock: FakeClock) -> None:
    facts = healthy_machine(sessions=(StoredSession(creds(clock=clock), True),))
    probe = FakeServerProbe(clock=clock)
    report = Doctor(FakeDoctorFacts(facts), probe, clock).execute(offline=True)
    assert report.exit_code == 0 and probe.probed == []
    assert next(c for c in report.checks if c.name == "server").status is Status.SKIPPED
    assert [c.name for c in report.checks] == [
        "home directory", "credentials file", "leftover files", "config.toml", "server URL", "lock", "TLS trust",
        "server", "sessions", "SPEC_KITTY_SAAS_TOKEN", "session check"]


def test_online_each_server_gets_a_server_and_a_clock_check(clock: FakeClock) -> None:
    facts = healthy_machine(sessions=(StoredSession(creds(clock=clock), True),
                                      StoredSession(creds(OTHER, clock=clock), False)))
    probe = FakeServerProbe({OTHER: ServerFacts(OTHER, reached=False, error=NetworkError("other: timed out"))},
                            clock=clock)
    report = Doctor(FakeDoctorFacts(facts), probe, clock).execute()
    assert probe.probed == [[SERVER, OTHER]]
    servers = [c for c in report.checks if c.name == "server"]
    assert [c.status for c in servers] == [Status.OK, Status.PROBLEM]
    assert [c.details["url"] for c in report.checks if c.name == "clock"] == [SERVER]  # only a reached server
    assert report.exit_code == 1


def test_warnings_alone_exit_0_and_a_problem_exits_1(clock: FakeClock) -> None:
    facts = healthy_machine(sessions=(StoredSession(creds(clock=clock), True),))
    warned = replace(facts, home=replace(facts.home, mode=0o755))
    report = Doctor(FakeDoctorFacts(warned), FakeServerProbe(clock=clock), clock).execute()
    assert report.count(Status.WARNING) == 1 and report.exit_code == 0
    loose = replace(warned, credentials=replace(warned.credentials, file=replace(warned.credentials.file, mode=0o644)))
    assert Doctor(FakeDoctorFacts(loose), FakeServerProbe(clock=clock), clock).execute().exit_code == 1


def test_the_session_check_runs_only_when_asked(clock: FakeClock) -> None:
    repo, server = session_world(clock, oauth=False)
    facts = healthy_machine(sessions=tuple(repo.sessions()))
    doctor = Doctor(FakeDoctorFacts(facts), FakeServerProbe(clock=clock), clock, check_session(repo, server, clock))
    doctor.execute()
    assert server.calls == ["obtain"]
    report = doctor.execute(check_session=True)
    assert server.calls == ["obtain", "ws_token"] and report.checks[-1].status is Status.OK


def test_no_check_ever_holds_a_token(clock: FakeClock) -> None:
    repo, server = session_world(clock, oauth=False)
    clock.advance(timedelta(minutes=20))
    facts = replace(healthy_machine(sessions=tuple(repo.sessions())), token_in_env=True)
    report = Doctor(FakeDoctorFacts(facts), FakeServerProbe(clock=clock), clock,
                    check_session(repo, server, clock)).execute(check_session=True)
    text = json.dumps([[c.name, c.found, c.fix, dict(c.details)] for c in report.checks], default=str)
    secrets = server.valid_access | server.valid_refresh
    assert len(secrets) >= 2 and not [s for s in secrets if s in text]
    assert isinstance(report.checks[0], Check)
