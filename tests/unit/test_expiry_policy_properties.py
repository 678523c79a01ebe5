"""Hypothesis properties of the expiry policy and of EnsureFreshToken driven by a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitty_auth.domain.model import MAX_LIFETIME, AccessDecision, Credentials, ExpiryPolicy, TokenPair, local_expiry
from kitty_auth.domain.use_cases import EnsureFreshToken, Login
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository, make_jwt

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
lifetimes = st.integers(min_value=1, max_value=30 * 86400).map(lambda s: timedelta(seconds=s))
offsets = st.integers(min_value=-10 * 86400, max_value=10 * 86400).map(lambda s: timedelta(seconds=s))
policy = ExpiryPolicy()
ORDER = [AccessDecision.USE, AccessDecision.REFRESH_EARLY, AccessDecision.REFRESH_REQUIRED]


@given(lifetimes, offsets)
def test_a_token_is_never_used_after_its_expiry(lifetime, offset):
    expires = EPOCH + lifetime
    now = expires + offset
    if now >= expires:
        assert policy.decide(expires, now, lifetime) is AccessDecision.REFRESH_REQUIRED
        assert not policy.is_usable(expires, now, lifetime)


@given(lifetimes, offsets)
def test_refresh_is_needed_exactly_inside_the_margin(lifetime, offset):
    expires = EPOCH + lifetime
    now = expires - lifetime + offset
    remaining = expires - now
    needs = policy.decide(expires, now, lifetime) is not AccessDecision.USE
    assert needs == (remaining <= policy.margin(lifetime))


@given(lifetimes)
def test_margin_is_bounded_by_a_fraction_of_the_lifetime(lifetime):
    margin = policy.margin(lifetime)
    assert timedelta(0) < margin <= policy.max_margin
    assert margin <= lifetime * policy.margin_fraction
    # a freshly issued token is always used as is: no refresh storms
    assert policy.decide(EPOCH + lifetime, EPOCH, lifetime) is AccessDecision.USE


@given(lifetimes, st.lists(st.integers(min_value=0, max_value=40 * 86400), min_size=2, max_size=20))
def test_decisions_only_move_one_way_as_time_passes(lifetime, instants):
    expires = EPOCH + lifetime
    decisions = [policy.decide(expires, EPOCH + timedelta(seconds=s), lifetime) for s in sorted(instants)]
    ranks = [ORDER.index(d) for d in decisions]
    assert ranks == sorted(ranks)


@given(st.integers(min_value=60, max_value=7 * 86400), offsets, st.integers(min_value=0, max_value=30))
def test_local_expiry_is_never_after_the_true_expiry_whatever_the_clock_offset(life_s, server_offset, latency_s):
    """Request sent at local t0; server (clock offset) issues after `latency`; expiry measured locally."""
    lifetime = timedelta(seconds=life_s)
    sent_local = EPOCH
    issued_server = sent_local + server_offset + timedelta(seconds=latency_s)
    token = make_jwt(iat=issued_server, lifetime=lifetime)
    expiry_local = local_expiry(token, sent_local)
    true_expiry_local = sent_local + timedelta(seconds=latency_s) + lifetime  # in local-clock terms
    assert expiry_local <= true_expiry_local
    assert true_expiry_local - expiry_local <= timedelta(seconds=latency_s + 1)


@settings(max_examples=50, deadline=None)
@given(
    access_s=st.integers(min_value=8, max_value=3600),
    steps=st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=40),
    skew_s=st.integers(min_value=-900, max_value=900),
)
def test_ensure_fresh_token_never_hands_out_an_expired_token_and_refreshes_at_most_once_per_lifetime(
    access_s, steps, skew_s
):
    clock = FakeClock(EPOCH)
    gateway = FakeTokenGateway(clock=clock, access_lifetime=timedelta(seconds=access_s),
                               server_clock_offset=timedelta(seconds=skew_s))
    repo = InMemoryCredentialRepository()
    Login(repo, gateway, clock).execute("https://auth.example.test", "user@example.com", "s3cret")
    use_case = EnsureFreshToken(repo, gateway, clock, policy)
    issued_at = {next(iter(gateway.valid_access)): clock.now()}
    for step in steps:
        clock.advance(timedelta(seconds=step))
        before = len(gateway.valid_access)
        token = use_case.execute().tokens.access
        if len(gateway.valid_access) > before:
            issued_at[token] = clock.now()
        age = clock.now() - issued_at[token]
        assert age < timedelta(seconds=access_s)  # never used at or after expiry (local clock)
    refreshes = gateway.calls.count("refresh")
    elapsed = sum(steps)
    margin = policy.margin(timedelta(seconds=access_s)).total_seconds()
    assert refreshes <= len(steps)
    assert refreshes <= elapsed // (access_s - margin) + 1


# The exact numbers, pinned: the properties above hold for any margin, so they would not notice a
# change of the 60 s margin, the 2 s floor or of "<=" into "<".
FIFTEEN_MINUTES = timedelta(minutes=15)
TINY = timedelta(microseconds=1)


def decide_with(remaining: timedelta, lifetime: timedelta = FIFTEEN_MINUTES) -> AccessDecision:
    return policy.decide(EPOCH + remaining, EPOCH, lifetime)


def test_a_fifteen_minute_token_is_refreshed_in_its_last_sixty_seconds_exactly():
    assert policy.margin(FIFTEEN_MINUTES) == timedelta(seconds=60)
    assert decide_with(timedelta(seconds=60) + TINY) is AccessDecision.USE
    assert decide_with(timedelta(seconds=60)) is AccessDecision.REFRESH_EARLY  # "<=": the boundary refreshes
    assert decide_with(timedelta(seconds=31)) is AccessDecision.REFRESH_EARLY


def test_a_token_with_two_seconds_left_or_less_is_not_sent():
    assert decide_with(timedelta(seconds=2) + TINY) is AccessDecision.REFRESH_EARLY
    assert decide_with(timedelta(seconds=2)) is AccessDecision.REFRESH_REQUIRED
    assert decide_with(timedelta(0)) is AccessDecision.REFRESH_REQUIRED


def test_short_tokens_get_a_quarter_of_their_life_as_margin():
    assert policy.margin(timedelta(seconds=4)) == timedelta(seconds=1)
    assert policy.margin(timedelta(seconds=120)) == timedelta(seconds=30)
    assert decide_with(timedelta(seconds=30), timedelta(seconds=120)) is AccessDecision.REFRESH_EARLY
    assert decide_with(timedelta(seconds=30) + TINY, timedelta(seconds=120)) is AccessDecision.USE


# Opaque access tokens (no claims to read): the margin comes from the lifetime stated when they were issued.
opaque_lifetimes = st.floats(min_value=4.0, max_value=MAX_LIFETIME.total_seconds(), allow_nan=False)


def opaque_session(lifetime_s: float, requested_at: datetime = EPOCH) -> Credentials:
    tokens = TokenPair.issued("at_opaque_access", "rt_opaque_refresh", requested_at, expires_in=lifetime_s)
    return Credentials(tokens=tokens, username="user@example.com", server_url="https://auth.example.test")


@given(opaque_lifetimes)
def test_a_freshly_issued_opaque_token_is_never_inside_the_margin(lifetime_s):
    creds = opaque_session(lifetime_s)
    assert creds.tokens.access_lifetime == timedelta(seconds=lifetime_s)
    assert creds.access_decision(EPOCH, policy) is AccessDecision.USE


@pytest.mark.parametrize(("lifetime_s", "margin_s"), [(60, 15), (4, 1), (2 * 3600, 60), (15 * 60, 60)])
def test_an_opaque_token_gets_the_margin_of_its_own_lifetime(lifetime_s, margin_s):
    creds = opaque_session(lifetime_s)
    assert policy.margin(creds.tokens.access_lifetime) == timedelta(seconds=margin_s)
    expires = creds.tokens.access_expires_at
    assert creds.access_decision(expires - timedelta(seconds=margin_s) - TINY, policy) is AccessDecision.USE
    assert creds.access_decision(expires - timedelta(seconds=margin_s), policy) is not AccessDecision.USE


@settings(max_examples=50, deadline=None)
@given(
    access_s=st.integers(min_value=4, max_value=3600),
    steps=st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=40),
)
def test_opaque_tokens_cause_no_refresh_storm(access_s, steps):
    """A server of opaque tokens (expires_in): each token is refreshed at most once per lifetime, and a
    token just refreshed is used as is -- also when it lives less than the 60 s maximum margin."""
    clock = FakeClock(EPOCH)
    gateway = FakeTokenGateway(clock=clock, access_lifetime=timedelta(seconds=access_s), opaque=True)
    repo = InMemoryCredentialRepository()
    Login(repo, gateway, clock).execute("https://auth.example.test", "user@example.com", "s3cret")
    use_case = EnsureFreshToken(repo, gateway, clock, policy)
    for step in steps:
        clock.advance(timedelta(seconds=step))
        token = use_case.execute().tokens.access
        refreshes = gateway.calls.count("refresh")
        assert use_case.execute().tokens.access == token  # the same instant: no second refresh
        assert gateway.calls.count("refresh") == refreshes
    margin = policy.margin(timedelta(seconds=access_s)).total_seconds()
    assert gateway.calls.count("refresh") <= sum(steps) // (access_s - margin) + 1


def test_a_session_stored_without_the_lifetime_assumes_fifteen_minutes():
    """Files written before the lifetime was kept (or by the spec-kitty 2.x host) fall back to the default."""
    creds = opaque_session(60)
    old = Credentials(tokens=TokenPair(creds.tokens.access, creds.tokens.refresh, creds.tokens.access_expires_at,
                                       creds.tokens.refresh_expires_at),
                      username=creds.username, server_url=creds.server_url)
    assert old.tokens.access_lifetime is None
    assert policy.margin(old.tokens.access_lifetime) == timedelta(seconds=60)
