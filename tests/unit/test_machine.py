"""Machine sessions over in-memory fakes: `login --machine` (LoginWithClientCredentials), renewal by the grant
(ClientCredentialsRenewal under EnsureFreshToken), and logout's revocation (MachineSessionRevoker)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kitty_auth.domain.errors import (
    CredentialsFileError,
    MalformedResponseError,
    NetworkError,
    RenewalUnavailableError,
    SessionExpiredError,
)
from kitty_auth.domain.machine import (
    CLIENT_ID_VARIABLE,
    SECRET_FILE_VARIABLE,
    SECRET_VARIABLE,
    ClientCredentials,
    ClientCredentialsRenewal,
    MachineClientRejectedError,
    MachineConfigurationError,
    MachineSessionRevoker,
)
from kitty_auth.domain.machine_login import LoginWithClientCredentials
from kitty_auth.domain.model import Credentials, IssuedTokens, LoginMethod, TokenPair
from kitty_auth.domain.oauth import Endpoints
from kitty_auth.domain.oauth_errors import UnsafeEndpointError
from kitty_auth.domain.revocation import RevokeOutcome
from kitty_auth.domain.token_source import TokenSource
from kitty_auth.domain.use_cases import EnsureFreshToken, Logout, ObtainWsToken
from kitty_auth.testing import (
    FakeClock,
    FakeMachineCredentials,
    FakeOAuthServer,
    FakeTokenGateway,
    InMemoryCredentialRepository,
)

URL = "https://auth.example.test"
CLIENT, SECRET = "ci-bot", "s3cret-machine-secret-value"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> FakeOAuthServer:
    return FakeOAuthServer(clock=clock, server_url=URL, machine_clients={CLIENT: SECRET})


@pytest.fixture
def repo() -> InMemoryCredentialRepository:
    return InMemoryCredentialRepository()


@pytest.fixture
def env() -> FakeMachineCredentials:
    return FakeMachineCredentials(CLIENT, SECRET)


def login(repo: InMemoryCredentialRepository, server: FakeOAuthServer, clock: FakeClock,
          env: FakeMachineCredentials) -> Credentials:
    use_case = LoginWithClientCredentials(repo, server, clock, env)
    return use_case.execute(URL, use_case.configuration())


def ensure(repo: InMemoryCredentialRepository, server: FakeOAuthServer, clock: FakeClock,
           env: FakeMachineCredentials) -> EnsureFreshToken:
    """EnsureFreshToken as the container wires it: OAuth sessions refresh at ``server``, machine
    sessions without a refresh token are renewed by its grant."""
    gateway = ClientCredentialsRenewal(_RefreshRouter(server, clock), lambda: server, env)
    return EnsureFreshToken(repo, gateway, clock)


class _RefreshRouter(FakeTokenGateway):
    """The session gateway: OAuth sessions refresh at the fake OAuth server (as SessionTokenGateway routes them)."""

    def __init__(self, server: FakeOAuthServer, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.oauth = server

    def refresh(self, session, on_late=None):  # noqa: ANN001, ANN201
        return self.oauth.refresh(session, on_late)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("client_id", "secret", "missing"), [
    (None, None, f"neither {CLIENT_ID_VARIABLE} nor a secret variable is set"),
    (None, SECRET, f"{CLIENT_ID_VARIABLE} is not set"),
    (CLIENT, None, f"neither {SECRET_FILE_VARIABLE} nor {SECRET_VARIABLE} is set"),
])
def test_missing_configuration_is_one_sentence_naming_the_variables(repo, server, clock, client_id, secret,  # noqa: ANN001
                                                                     missing) -> None:
    use_case = LoginWithClientCredentials(repo, server, clock, FakeMachineCredentials(client_id, secret))
    with pytest.raises(MachineConfigurationError) as caught:
        use_case.configuration()
    message = str(caught.value)
    assert message.endswith(missing + ".") and message.count(". ") == 0
    assert all(name in message for name in (CLIENT_ID_VARIABLE, SECRET_FILE_VARIABLE, SECRET_VARIABLE))
    assert server.calls == []


def test_an_unusable_secret_file_says_so_before_a_missing_id(repo, server, clock) -> None:  # noqa: ANN001
    env = FakeMachineCredentials(None, None, error=MachineConfigurationError("The client secret file /x is empty."))
    with pytest.raises(MachineConfigurationError, match="is empty"):
        LoginWithClientCredentials(repo, server, clock, env).configuration()


def test_the_credentials_never_show_the_secret_in_a_repr() -> None:
    assert SECRET not in repr(ClientCredentials(CLIENT, SECRET))


# --------------------------------------------------------------------------- login


@pytest.mark.parametrize("with_refresh", [False, True], ids=["plain", "with-refresh-token"])
def test_login_stores_the_service_identity_and_the_client_never_the_secret(repo, server, clock, env,  # noqa: ANN001
                                                                           with_refresh: bool) -> None:
    server.machine_refresh_tokens = with_refresh
    credentials = login(repo, server, clock, env)
    assert repo.credentials == credentials and server.grants == [CLIENT]
    assert credentials.login_method is LoginMethod.MACHINE
    assert credentials.machine is not None and credentials.machine.client_id == CLIENT
    assert credentials.username == server.machine_email and credentials.team_slug == "ci-bot"
    assert (credentials.tokens.refresh is not None) is with_refresh
    assert credentials.tokens.refresh_expires_at is None  # unknown: valid until the server refuses
    assert credentials.oauth is not None and credentials.oauth.client_id == "cli_native"  # refreshes like the others
    assert SECRET not in repr(credentials)
    assert credentials.is_authenticated(clock.now())


def test_a_server_without_metadata_is_asked_at_spec_kittys_default_token_path(repo, server, clock, env) -> None:  # noqa: ANN001
    server.publishes_metadata = False
    credentials = login(repo, server, clock, env)
    assert credentials.oauth is not None and credentials.oauth.token_endpoint == URL + "/oauth/token"


@pytest.mark.parametrize("field", ["token", "revocation"])
def test_an_off_origin_endpoint_is_refused_before_the_secret_is_sent(repo, server, clock, env, field: str) -> None:  # noqa: ANN001
    server.metadata = replace(Endpoints.defaults(URL), **{field: "https://evil.example.test/oauth/x"})
    with pytest.raises(UnsafeEndpointError):
        login(repo, server, clock, env)
    assert server.calls == ["discover"] and repo.credentials is None


@pytest.mark.parametrize("env_values", [(CLIENT, "wrong-secret"), ("ci-nobody", SECRET)], ids=["wrong-secret", "unknown"])
def test_invalid_client_stores_nothing_and_does_not_guess_why(repo, server, clock, env_values) -> None:  # noqa: ANN001
    with pytest.raises(MachineClientRejectedError) as caught:
        login(repo, server, clock, FakeMachineCredentials(*env_values))
    message = str(caught.value)
    assert "invalid_client" in message and CLIENT_ID_VARIABLE in message and SECRET_VARIABLE in message
    assert "unknown" in message and "wrong" in message and "revoked" in message  # all alike, none chosen
    assert repo.credentials is None and repo.saves == 0


def test_a_stored_session_is_kept_when_the_login_fails(repo, server, clock, env) -> None:  # noqa: ANN001
    before = login(repo, server, clock, env)
    server.revoke_machine_client(CLIENT)
    with pytest.raises(MachineClientRejectedError):
        login(repo, server, clock, env)
    assert repo.credentials == before


@pytest.mark.parametrize("with_refresh", [False, True], ids=["plain", "with-refresh-token"])
def test_tokens_issued_before_me_failed_are_revoked_by_their_owner(repo, server, clock, env,  # noqa: ANN001
                                                                   with_refresh: bool) -> None:
    server.machine_refresh_tokens = with_refresh
    server.fail_next("me", MalformedResponseError())
    with pytest.raises(MalformedResponseError):
        login(repo, server, clock, env)
    assert repo.credentials is None and server.calls[-2:] == ["me", "revoke"]
    (revoked,) = server.revoked  # the refresh token, or the access token as its client (with the secret)
    assert revoked not in server.valid_access | server.valid_refresh


def test_a_plain_session_that_cannot_be_saved_is_revoked(repo, server, clock, env) -> None:  # noqa: ANN001
    def unwritable(credentials: Credentials) -> None:
        raise CredentialsFileError("/home/u/.spec-kitty/credentials", "disk full")

    repo.save = unwritable  # type: ignore[method-assign]
    with pytest.raises(CredentialsFileError):
        login(repo, server, clock, env)
    assert len(server.revoked) == 1 and not server.valid_access  # its one access token is dead


def test_already_logged_in_is_per_server_and_client(repo, server, clock, env) -> None:  # noqa: ANN001
    login(repo, server, clock, env)
    use_case = LoginWithClientCredentials(repo, server, clock, env)
    assert use_case.already_logged_in(URL + "/", CLIENT) is not None
    assert use_case.already_logged_in(URL, "another-bot") is None
    assert use_case.already_logged_in("https://other.example.test", CLIENT) is None


# --------------------------------------------------------------------------- renewal


def expire(clock: FakeClock, credentials: Credentials) -> None:
    clock.set(credentials.tokens.access_expires_at + timedelta(seconds=1))


def test_an_expired_plain_session_is_renewed_by_the_grant_once(repo, server, clock, env) -> None:  # noqa: ANN001
    first = login(repo, server, clock, env)
    expire(clock, first)
    renewed = ensure(repo, server, clock, env).execute()
    assert renewed.tokens.access != first.tokens.access and renewed.tokens.refresh is None
    assert repo.credentials == renewed and server.grants == [CLIENT, CLIENT]
    assert renewed.machine == first.machine and renewed.username == first.username
    again = ensure(repo, server, clock, env).execute()  # fresh now: no request at all
    assert again == renewed and server.grants == [CLIENT, CLIENT]


def test_a_session_with_a_refresh_token_refreshes_like_other_oauth_sessions(repo, server, clock, env) -> None:  # noqa: ANN001
    server.machine_refresh_tokens = True
    first = login(repo, server, clock, env)
    expire(clock, first)
    env.secret_value = None  # a refresh needs no secret
    renewed = ensure(repo, server, clock, env).execute()
    assert renewed.tokens.refresh not in (None, first.tokens.refresh)
    assert server.calls.count("refresh") == 1 and server.grants == [CLIENT]


def test_a_process_that_waited_for_the_lock_uses_what_the_renewing_one_stored(repo, server, clock, env) -> None:  # noqa: ANN001
    first = login(repo, server, clock, env)
    expire(clock, first)
    other = ensure(repo, server, clock, env)
    repo.on_lock = other.refresh_now  # another process renews while we wait for the lock
    ensure(repo, server, clock, env).execute()
    assert server.grants == [CLIENT, CLIENT]  # one renewal, not two


def test_without_the_secret_the_session_is_kept_and_the_error_names_the_variables(repo, server, clock) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, FakeMachineCredentials(CLIENT, SECRET))
    expire(clock, stored)
    with pytest.raises(RenewalUnavailableError) as caught:
        ensure(repo, server, clock, FakeMachineCredentials(None, None)).execute()
    message = str(caught.value)
    assert message.startswith("Session expired. Please log in again. ")
    assert SECRET_FILE_VARIABLE in message and SECRET_VARIABLE in message and CLIENT in message
    assert isinstance(caught.value, SessionExpiredError)
    assert repo.credentials == stored and server.grants == [CLIENT]  # kept: another process may renew it


def test_without_the_secret_a_token_inside_the_margin_is_still_used(repo, server, clock) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, FakeMachineCredentials(CLIENT, SECRET))
    clock.set(stored.tokens.access_expires_at - timedelta(seconds=30))  # inside the 60 s margin, still valid
    assert ensure(repo, server, clock, FakeMachineCredentials(None, None)).execute() == stored


def test_an_unusable_secret_file_at_renewal_keeps_the_session(repo, server, clock) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, FakeMachineCredentials(CLIENT, SECRET))
    expire(clock, stored)
    env = FakeMachineCredentials(CLIENT, None, error=MachineConfigurationError("The client secret file /x is empty."))
    with pytest.raises(RenewalUnavailableError, match="the client secret file /x is empty"):
        ensure(repo, server, clock, env).execute()
    assert repo.credentials == stored


def test_a_secret_for_another_client_is_never_sent(repo, server, clock) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, FakeMachineCredentials(CLIENT, SECRET))
    expire(clock, stored)
    server.machine_clients["other-bot"] = "other-secret"
    with pytest.raises(RenewalUnavailableError, match="names another client here"):
        ensure(repo, server, clock, FakeMachineCredentials("other-bot", "other-secret")).execute()
    assert server.grants == [CLIENT] and repo.credentials == stored


def test_a_revoked_principal_ends_the_session_like_a_rejected_refresh(repo, server, clock, env) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, env)
    expire(clock, stored)
    server.revoke_machine_client(CLIENT)
    with pytest.raises(SessionExpiredError) as caught:
        ensure(repo, server, clock, env).execute()
    assert not isinstance(caught.value, RenewalUnavailableError)
    assert repo.credentials is None


def test_a_transient_failure_of_the_grant_keeps_the_session(repo, server, clock, env) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, env)
    expire(clock, stored)
    server.fail_next("client_credentials", NetworkError("auth.example.test: connection refused"))
    with pytest.raises(NetworkError):
        ensure(repo, server, clock, env).execute()
    assert repo.credentials == stored


def test_a_rejection_clears_only_the_pair_that_was_rejected(repo, server, clock, env) -> None:  # noqa: ANN001
    """Two sessions without a refresh token differ by their access token: a stale rejection keeps a newer one."""
    stale = login(repo, server, clock, env)
    newer = login(repo, server, clock, env)
    assert stale.tokens.refresh is None and newer.tokens.refresh is None
    ensure(repo, server, clock, env).forget_if_unchanged(stale)
    assert repo.credentials == newer
    ensure(repo, server, clock, env).forget_if_unchanged(newer)
    assert repo.credentials is None


def test_a_ws_token_401_renews_by_the_grant_and_retries(repo, server, clock, env) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, env)
    router = _RefreshRouter(server, clock)
    router.valid_access = server.valid_access  # the ws-token endpoint accepts what the OAuth server issued
    server.valid_access.discard(stored.tokens.access)  # ...but no longer the stored access token
    gateway = ClientCredentialsRenewal(router, lambda: server, env)
    ws = ObtainWsToken(TokenSource(EnsureFreshToken(repo, gateway, clock), repo), gateway).execute()
    assert ws.ws_token and server.grants == [CLIENT, CLIENT]
    assert repo.credentials is not None and repo.credentials.tokens.access != stored.tokens.access


# --------------------------------------------------------------------------- logout


def logout(repo: InMemoryCredentialRepository, server: FakeOAuthServer, env: FakeMachineCredentials) -> Logout:
    return Logout(repo, MachineSessionRevoker(server, env))


def test_logout_revokes_a_plain_sessions_access_token_as_its_client(repo, server, clock, env) -> None:  # noqa: ANN001
    stored = login(repo, server, clock, env)
    result = logout(repo, server, env).execute_and_revoke()
    assert result.outcome is RevokeOutcome.REVOKED and repo.credentials is None
    assert stored.tokens.access in server.revoked and stored.tokens.access not in server.valid_access


def test_logout_without_the_secret_removes_the_session_and_says_why_it_was_not_revoked(repo, server, clock,  # noqa: ANN001
                                                                                         env) -> None:
    stored = login(repo, server, clock, env)
    result = logout(repo, server, FakeMachineCredentials(None, None)).execute_and_revoke()
    assert repo.credentials is None and result.removed and not result.revoked
    assert "not revoked" in result.sentence and SECRET_FILE_VARIABLE in result.sentence
    assert stored.tokens.access in server.valid_access and SECRET not in result.sentence


def test_logout_of_a_session_with_a_refresh_token_needs_no_secret(repo, server, clock, env) -> None:  # noqa: ANN001
    server.machine_refresh_tokens = True
    stored = login(repo, server, clock, env)
    result = logout(repo, server, FakeMachineCredentials(None, None)).execute_and_revoke()
    assert result.revoked and stored.tokens.refresh in server.revoked


# --------------------------------------------------------------------------- the model


def test_a_pair_without_a_refresh_token() -> None:
    clock = FakeClock()
    pair = TokenPair.from_issued(IssuedTokens(access="at-1", refresh=None, expires_in=60), clock.now(),
                                 default_refresh=None)
    assert pair.refresh is None and pair.refresh_expires_at is None and pair.session_key == "at-1"
    assert pair.access_expires_at == clock.now() + timedelta(seconds=60)
    assert pair.refresh_usable(clock.now() + timedelta(days=3650))  # renewed by the grant, until refused
    assert "None" in repr(pair) and "at-1" not in repr(pair)
    with pytest.raises(MalformedResponseError):
        TokenPair.issued("at-1", "", clock.now())  # an empty refresh token is still a broken answer
