"""normalize_server_url: the one check every server URL passes before any network traffic."""

from __future__ import annotations

import pytest

from kitty_auth.domain.errors import InvalidServerUrlError
from kitty_auth.domain.model import normalize_server_url, same_server


@pytest.mark.parametrize(("typed", "canonical"), [
    ("https://auth.example.test", "https://auth.example.test"),
    ("https://auth.example.test///", "https://auth.example.test"),
    ("HTTPS://Auth.Example.TEST/", "https://auth.example.test"),
    ("https://Auth.Example.test:8443/API/", "https://auth.example.test:8443/API"),  # paths keep their case
    ("https://[::1]:8443/", "https://[::1]:8443"),
    ("  https://auth.example.test  ", "https://auth.example.test"),
])
def test_canonical_form(typed, canonical):
    assert normalize_server_url(typed) == canonical
    assert same_server(typed, canonical)


@pytest.mark.parametrize(("typed", "canonical"), [
    ("example.com", "https://example.com"),
    ("Example.COM:8443/api/", "https://example.com:8443/api"),
    ("127.0.0.1:8443", "https://127.0.0.1:8443"),
])
def test_a_bare_host_implies_https_for_urls_users_type(typed, canonical):
    assert normalize_server_url(typed, implied_https=True) == canonical
    with pytest.raises(InvalidServerUrlError, match="HTTPS is required"):
        normalize_server_url(typed)  # programs' URLs (stored sessions, endpoints) must say https://


@pytest.mark.parametrize("url", ["http://example.com", "HTTP://example.com", "ftp://example.com", "wss://example.com"])
def test_other_schemes_stay_refused_even_with_https_implied(url):
    with pytest.raises(InvalidServerUrlError, match="HTTPS is required"):
        normalize_server_url(url, implied_https=True)


@pytest.mark.parametrize(("source", "expected"), [
    (None, "HTTPS is required: the server URL must start with https:// (got http://)."),
    ("SPEC_KITTY_SAAS_URL", "HTTPS is required: the server URL from SPEC_KITTY_SAAS_URL must start with https:// "
                            "(got http://)."),
    ("--server", "HTTPS is required: the server URL from --server must start with https:// (got http://)."),
])
def test_errors_name_where_the_url_came_from(source, expected):
    with pytest.raises(InvalidServerUrlError) as info:
        normalize_server_url("http://example.com", source=source, implied_https=True)
    assert str(info.value) == expected


@pytest.mark.parametrize(("url", "fragment"), [
    ("", "is empty"),
    ("   ", "is empty"),
    ("https://", "has no host name"),
    ("not a url", "contains spaces"),
    ("https://exa\tmple.com", "contains spaces"),
    ("https://127.0.0.1:99999", "is not a valid URL"),
    ("https://[::1", "is not a valid URL"),
    ("https://example.com/?next=evil", "must not contain a query"),
])
def test_unusable_urls_name_the_problem_and_the_source(url, fragment):
    with pytest.raises(InvalidServerUrlError) as info:
        normalize_server_url(url, source="config.toml", implied_https=True)
    assert fragment in str(info.value)
    assert str(info.value).startswith(("The server URL from config.toml", "HTTPS is required"))


def test_a_password_in_the_url_is_refused_and_never_echoed():
    with pytest.raises(InvalidServerUrlError) as info:
        normalize_server_url("alice:Hunter2-secret@example.com", source="--server", implied_https=True)
    assert "user name or password" in str(info.value)
    assert "Hunter2" not in str(info.value) and "alice" not in str(info.value)
