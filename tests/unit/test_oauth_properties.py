"""Properties of the pure OAuth rules: PKCE, state, endpoint checks, the callback verdict, the device-polling schedule."""

from __future__ import annotations

import base64
import hashlib
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kitty_auth.domain.oauth import (
    CallbackKind,
    MIN_POLL_INTERVAL,
    DeviceAuthorization,
    Endpoints,
    Pkce,
    PollOutcome,
    PollSchedule,
    authorization_url,
    check_endpoints,
    judge_callback,
    metadata_url,
    pkce_challenge,
    pkce_verifier,
    same_origin_https,
)
from kitty_auth.domain.oauth_errors import OAuthUnsupportedError, UnsafeEndpointError
from kitty_auth.domain.revocation import LogoutResult, RevokeOutcome

UNRESERVED = set(string.ascii_letters + string.digits + "-._~")
T0 = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)


# --------------------------------------------------------------------------- PKCE


def test_rfc7636_appendix_b_example() -> None:
    octets = bytes([116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
                    22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121])
    verifier = pkce_verifier(octets)
    assert verifier == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@given(st.binary(min_size=32, max_size=96))
def test_verifier_is_43_to_128_unreserved_characters(entropy: bytes) -> None:
    verifier = pkce_verifier(entropy)
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= UNRESERVED


@given(st.binary(min_size=32, max_size=96))
def test_challenge_is_unpadded_base64url_sha256_of_the_verifier(entropy: bytes) -> None:
    verifier = pkce_verifier(entropy)
    challenge = pkce_challenge(verifier)
    assert len(challenge) == 43 and "=" not in challenge and set(challenge) <= UNRESERVED
    assert base64.urlsafe_b64decode(challenge + "=") == hashlib.sha256(verifier.encode()).digest()


@given(st.binary(min_size=32, max_size=96), st.binary(min_size=32, max_size=96))
def test_different_entropy_gives_different_verifiers_and_challenges(a: bytes, b: bytes) -> None:
    if a != b:
        assert pkce_verifier(a) != pkce_verifier(b)
        assert pkce_challenge(pkce_verifier(a)) != pkce_challenge(pkce_verifier(b))


@pytest.mark.parametrize("size", [0, 31, 97])
def test_too_little_or_too_much_entropy_is_refused(size: int) -> None:
    with pytest.raises(ValueError):
        pkce_verifier(b"x" * size)


def test_pkce_repr_hides_the_verifier_and_state() -> None:
    pkce = Pkce.from_entropy(b"v" * 32, b"s" * 32)
    assert pkce.verifier not in repr(pkce) and pkce.state not in repr(pkce)


def test_authorization_url_carries_the_challenge_never_the_verifier() -> None:
    pkce = Pkce.from_entropy(b"v" * 32, b"s" * 32)
    url = authorization_url("https://a.test/oauth/authorize", client_id="cli_native",
                            redirect_uri="http://127.0.0.1:5000/callback", pkce=pkce)
    assert pkce.challenge in url and pkce.verifier not in url
    assert "code_challenge_method=S256" in url and f"state={pkce.state}" in url
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback" in url and "scope=offline_access" in url


# --------------------------------------------------------------------------- endpoints


@pytest.mark.parametrize(("endpoint", "ok"), [
    ("https://auth.test/oauth/token", True),
    ("https://AUTH.test:443/oauth/token", True),
    ("http://auth.test/oauth/token", False),
    ("https://evil.test/oauth/token", False),
    ("https://auth.test.evil.test/oauth/token", False),
    ("https://auth.test:8443/oauth/token", False),
    ("https://user@auth.test/oauth/token", False),
    ("https://auth.test/oauth/token#x", False),
    ("https://auth.test/oa uth", False),
    ("", False),
    ("//auth.test/oauth/token", False),
])
def test_same_origin_https(endpoint: str, ok: bool) -> None:
    assert same_origin_https("https://auth.test", endpoint) is ok


@pytest.mark.parametrize(
    ("server_url", "metadata"),
    [
        ("https://example.test", "https://example.test/.well-known/oauth-authorization-server"),
        ("https://example.test/", "https://example.test/.well-known/oauth-authorization-server"),
        ("https://example.test/tenant", "https://example.test/.well-known/oauth-authorization-server/tenant"),
        ("https://Example.test:8443/a/b/", "https://example.test:8443/.well-known/oauth-authorization-server/a/b"),
    ],
)
def test_metadata_url_puts_the_well_known_path_between_host_and_issuer_path(server_url: str, metadata: str) -> None:
    """RFC 8414 section 3: https://host/tenant -> https://host/.well-known/oauth-authorization-server/tenant."""
    assert metadata_url(server_url) == metadata


def test_every_endpoint_the_login_uses_is_checked_revocation_included() -> None:
    good = Endpoints.defaults("https://auth.test")
    check_endpoints("https://auth.test", good, ("authorization",))
    for field in ("authorization", "token", "revocation"):
        bad = Endpoints(**{**good.__dict__, field: "https://evil.test/x"})
        with pytest.raises(UnsafeEndpointError):
            check_endpoints("https://auth.test", bad, ("authorization",))
    device_elsewhere = Endpoints(**{**good.__dict__, "device_authorization": "https://evil.test/x"})
    check_endpoints("https://auth.test", device_elsewhere, ("authorization",))  # not used by a browser login
    with pytest.raises(UnsafeEndpointError):
        check_endpoints("https://auth.test", device_elsewhere, ("device_authorization",))


@pytest.mark.parametrize("field", ["token", "revocation", "device_authorization"])
def test_an_endpoint_we_send_requests_to_may_not_carry_a_query(field: str) -> None:
    """The HTTP core sends to plain URLs only: refused before the browser opens, not at the code exchange."""
    good = Endpoints.defaults("https://auth.test")
    bad = Endpoints(**{**good.__dict__, field: getattr(good, field) + "?tenant=1"})
    with pytest.raises(UnsafeEndpointError, match="query string"):
        check_endpoints("https://auth.test", bad, ("authorization", "device_authorization"))
    with_query = Endpoints(**{**good.__dict__, "authorization": good.authorization + "?tenant=1"})
    check_endpoints("https://auth.test", with_query, ("authorization",))  # the browser's URL may have one


def test_a_missing_endpoint_for_the_method_is_unsupported() -> None:
    endpoints = Endpoints(authorization=None, token="https://a.test/t", device_authorization=None, revocation=None)
    with pytest.raises(OAuthUnsupportedError):
        check_endpoints("https://a.test", endpoints, ("device_authorization",))


# --------------------------------------------------------------------------- the callback


@given(st.dictionaries(st.sampled_from(["code", "state", "error", "x"]), st.text(max_size=20)))
def test_a_callback_without_our_state_is_always_foreign(params: dict[str, str]) -> None:
    expected = "our-state-" + "x" * 30
    if params.get("state") != expected:
        assert judge_callback(params, expected).kind is CallbackKind.FOREIGN


def test_callback_verdicts_with_our_state() -> None:
    assert judge_callback({"state": "s" * 43, "code": "c"}, "s" * 43).kind is CallbackKind.CODE
    assert judge_callback({"state": "s" * 43, "error": "access_denied"}, "s" * 43).kind is CallbackKind.DENIED
    other = judge_callback({"state": "s" * 43, "error": "server_error"}, "s" * 43)
    assert other.kind is CallbackKind.ERROR and other.error == "server_error"
    assert judge_callback({"state": "s" * 43}, "s" * 43).kind is CallbackKind.ERROR
    odd = judge_callback({"state": "s" * 43, "error": "<script>\x1b[2J"}, "s" * 43)
    assert odd.error == "unknown_error"  # never echo arbitrary text into a message


# --------------------------------------------------------------------------- device polling

outcomes = st.lists(st.sampled_from(list(PollOutcome)), max_size=40)


def _authorization(interval: float | None, expires_in: float = 600) -> DeviceAuthorization:
    return DeviceAuthorization(device_code="d" * 20, user_code="ABCD", verification_uri="https://a.test/d",
                               expires_in=expires_in, interval=interval)


@given(st.one_of(st.none(), st.integers(min_value=1, max_value=60)), outcomes)
def test_interval_grows_by_five_seconds_per_slow_down_without_cap(interval: int | None, seen: list[PollOutcome]) -> None:
    schedule = PollSchedule.start(T0, _authorization(interval))
    start = interval or 5
    for outcome in seen:
        schedule = schedule.after(outcome)
    slow_downs = seen.count(PollOutcome.SLOW_DOWN)
    assert schedule.interval == timedelta(seconds=start + 5 * slow_downs)


@given(st.one_of(st.none(), st.integers(min_value=1, max_value=60)), outcomes)
def test_never_polls_sooner_than_the_interval(interval: int | None, seen: list[PollOutcome]) -> None:
    schedule = PollSchedule.start(T0, _authorization(interval, expires_in=10**9))
    now = T0
    for outcome in seen:
        due = schedule.next_poll(now)
        assert due is not None and due - now >= schedule.interval
        now = due
        schedule = schedule.after(outcome)


@given(st.one_of(st.none(), st.floats()), outcomes)
@example(1e-9, [PollOutcome.PENDING] * 5)  # the review's server: 1,362 polls a second before the floor
@example(0.0, [PollOutcome.PENDING] * 5)
@example(-1.0, [PollOutcome.PENDING] * 5)
@example(0.999, [PollOutcome.TRANSIENT, PollOutcome.PENDING])
@example(float("nan"), [PollOutcome.PENDING])
@example(float("inf"), [PollOutcome.PENDING])
def test_no_two_polls_are_closer_than_one_second_whatever_the_server_says(interval: float | None,
                                                                          seen: list[PollOutcome]) -> None:
    schedule = PollSchedule.start(T0, _authorization(interval, expires_in=86_400))
    now = T0
    for outcome in [PollOutcome.PENDING, *seen]:
        due = schedule.next_poll(now)
        if due is None:  # an interval past the code's life: no poll at all
            return
        assert due - now >= MIN_POLL_INTERVAL == timedelta(seconds=1)
        now = due
        schedule = schedule.after(outcome)


def test_transient_failures_back_off_then_reset() -> None:
    schedule = PollSchedule.start(T0, _authorization(5))
    schedule = schedule.after(PollOutcome.TRANSIENT).after(PollOutcome.TRANSIENT)
    assert schedule.wait == timedelta(seconds=20)
    assert schedule.after(PollOutcome.PENDING).wait == timedelta(seconds=5)


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=1, max_value=900), outcomes)
def test_never_polls_at_or_after_expiry(interval: int, expires_in: int, seen: list[PollOutcome]) -> None:
    schedule = PollSchedule.start(T0, _authorization(interval, expires_in))
    now = T0
    for outcome in seen:
        due = schedule.next_poll(now)
        if due is None:
            assert now + schedule.wait >= T0 + timedelta(seconds=expires_in)
            return
        assert due < T0 + timedelta(seconds=expires_in)
        now = due
        schedule = schedule.after(outcome)


# --------------------------------------------------------------------------- logout sentences


@pytest.mark.parametrize("outcome", list(RevokeOutcome))
def test_logout_sentence_says_revoked_or_not_revoked(outcome: RevokeOutcome) -> None:
    sentence = LogoutResult(True, outcome, "Cannot reach server. Check your connection.").sentence
    if outcome is RevokeOutcome.REVOKED:
        assert sentence == "The server revoked the session."
    else:
        assert "not revoked" in sentence and sentence.endswith(".") and ".." not in sentence
