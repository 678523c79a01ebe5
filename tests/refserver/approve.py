"""Approves (or denies) an OAuth login on the reference server's pages as a user would, over plain HTTPS with the
standard library (no browser): for `make demo` and tests of browser and device logins.

    from refserver.approve import approve_authorization, approve_device
    approve_device(device["verification_uri_complete"], ca=server.ca_path)                  # or approve=False
    callback = approve_authorization(authorize_url, ca=server.ca_path)                      # or approve=False
    callback.location  # http://127.0.0.1:PORT/callback?code=...&state=... (not requested unless follow=True)

Each call signs in afresh on the Django login page (GET the form, POST the credentials with the CSRF token, keep
the cookies), then submits the consent or device pages. Requests go only to the server's own origin, and, with
`follow=True`, to the loopback callback; proxies from the environment are never used.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from typing import Any

from refserver import DEMO_PASSWORD, DEMO_USERNAME

__all__ = ["Callback", "PageError", "approve_authorization", "approve_device"]

REDIRECTS = (301, 302, 303, 307, 308)


class PageError(RuntimeError):
    """A page was not what a user following the flow would see (refused login, unknown code, error page...)."""


@dataclasses.dataclass(frozen=True)
class Callback:
    """Where the authorization server sent the browser at the end: the loopback redirect URI with `code` (or
    `error`) and `state`. With `follow=True`, also what the callback answered."""

    location: str
    status: int | None = None
    body: str | None = None

    @property
    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.location).query))


# ----------------------------------------------------------------------------------------------------- pages


@dataclasses.dataclass
class Form:
    id: str | None
    action: str
    method: str
    fields: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # named inputs other than buttons
    buttons: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # named submit buttons


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.forms.append(Form(attr.get("id"), attr.get("action", ""), attr.get("method", "get").lower()))
        elif self.forms and tag in ("input", "button") and attr.get("name"):
            kind = attr.get("type", "submit" if tag == "button" else "text").lower()
            if kind == "submit":
                self.forms[-1].buttons.append((attr["name"], attr.get("value", "")))
            elif kind not in ("checkbox", "radio") or "checked" in attr:
                self.forms[-1].fields.append((attr["name"], attr.get("value", "")))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


@dataclasses.dataclass
class Page:
    url: str
    html: str

    def __post_init__(self) -> None:
        parser = FormParser()
        parser.feed(self.html)
        self.forms, self.text = parser.forms, " ".join(parser.text)

    def form(self, form_id: str | None = None) -> Form:
        for form in self.forms:
            if form_id is None or form.id == form_id:
                return form
        raise PageError(f"no {'form ' + form_id if form_id else 'form'} on {self.url}: {self.text[:300]!r}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx, which Browser handles


class Browser:
    """A cookie-keeping HTTPS client that follows redirects within the server's origin, and stops at a redirect
    anywhere else (returning its Location)."""

    def __init__(self, origin: str, ca: str | os.PathLike[str] | ssl.SSLContext | None, timeout: float = 10.0) -> None:
        self.origin = origin
        self.timeout = timeout
        context = ca if isinstance(ca, ssl.SSLContext) else ssl.create_default_context(cafile=None if ca is None else str(ca))
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirects(),
        )

    def open(self, url: str, data: list[tuple[str, str]] | None = None, referer: str | None = None) -> Page | str:
        """The page at the end of same-origin redirects, or the Location of a redirect leaving the origin."""
        for _ in range(10):
            if origin_of(url) != self.origin:
                raise PageError(f"refusing to request {url!r}: not on {self.origin}")
            headers = {"Origin": self.origin, "Referer": referer or url} if data is not None else {}
            body = urllib.parse.urlencode(data).encode() if data is not None else None
            request = urllib.request.Request(url, data=body, headers=headers, method="POST" if data is not None else "GET")
            try:
                with self.opener.open(request, timeout=self.timeout) as response:
                    return Page(response.geturl(), response.read().decode("utf-8", "replace"))
            except urllib.error.HTTPError as exc:
                if exc.code not in REDIRECTS:
                    text = Page(url, exc.read().decode("utf-8", "replace")).text
                    raise PageError(f"{url} answered HTTP {exc.code}: {text[:300]!r}") from None
                location = urllib.parse.urljoin(url, exc.headers["Location"])
            if origin_of(location) != self.origin:
                return location
            url, data, referer = location, None, None
        raise PageError(f"too many redirects from {url}")

    def page(self, url: str, data: list[tuple[str, str]] | None = None, referer: str | None = None) -> Page:
        result = self.open(url, data, referer)
        if isinstance(result, str):
            raise PageError(f"expected a page of {self.origin}, was sent to {result}")
        return result

    def submit(self, page: Page, form: Form, fields: dict[str, str] | None = None, button: tuple[str, str] | None = None) -> Page | str:
        values = dict(form.fields) | (fields or {})
        data = list(values.items()) + ([button] if button else [])
        return self.open(urllib.parse.urljoin(page.url, form.action or page.url), data, referer=page.url)

    def sign_in(self, page: Page, username: str, password: str) -> Page | str:
        """Submit the login form if `page` is the login page; the page (or redirect) that follows."""
        if not any(form.id == "login" for form in page.forms):
            return page
        result = self.submit(page, page.form("login"), {"username": username, "password": password})
        if isinstance(result, Page) and any(form.id == "login" for form in result.forms):
            raise PageError(f"the login page refused {username!r}: {result.text[:300]!r}")
        return result


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def as_page(result: Page | str, what: str) -> Page:
    if isinstance(result, str):
        raise PageError(f"expected the {what} page, was sent to {result}")
    return result


# ------------------------------------------------------------------------------------------------------ flows


def approve_device(
    verification_url: str,
    *,
    ca: str | os.PathLike[str] | ssl.SSLContext | None,
    username: str = DEMO_USERNAME,
    password: str = DEMO_PASSWORD,
    user_code: str | None = None,
    approve: bool = True,
    timeout: float = 10.0,
) -> None:
    """Sign in at `verification_url` (`verification_uri_complete`, or `verification_uri` with `user_code`), enter
    the code and approve (or deny) the device. Raises PageError if any page is not as expected."""
    browser = Browser(origin_of(verification_url), ca, timeout)
    page = as_page(browser.sign_in(browser.page(verification_url), username, password), "device code")
    code_form = page.form()
    code = user_code or dict(code_form.fields).get("user_code")
    if not code:
        raise PageError("no user code: pass user_code= or the verification_uri_complete")
    confirm = as_page(browser.submit(page, code_form, {"user_code": code}), "device confirmation")
    form = confirm.form()
    action = ("action", "accept" if approve else "deny")
    if action not in form.buttons:
        raise PageError(f"the code {code!r} was not accepted: {confirm.text[:300]!r}")
    status = as_page(browser.submit(confirm, form, button=action), "device status")
    expected = "Authorized" if approve else "Denied"
    if expected not in status.text:
        raise PageError(f"the device was not {expected.lower()}: {status.text[:300]!r}")


def approve_authorization(
    authorization_url: str,
    *,
    ca: str | os.PathLike[str] | ssl.SSLContext | None,
    username: str = DEMO_USERNAME,
    password: str = DEMO_PASSWORD,
    approve: bool = True,
    follow: bool = False,
    timeout: float = 10.0,
) -> Callback:
    """Open `authorization_url` (the authorization endpoint with client_id, redirect_uri, PKCE challenge, state...),
    sign in, then press Authorize (or Cancel) on the consent page. Returns the redirect to the callback without
    requesting it, unless `follow` (then its status and body too; only loopback http callbacks are followed)."""
    browser = Browser(origin_of(authorization_url), ca, timeout)
    result = browser.sign_in(browser.page(authorization_url), username, password)
    if isinstance(result, Page):  # the consent page (an error page has no form)
        form = result.form("authorizationForm")
        button = next(((name, value) for name, value in form.buttons if name == "allow"), None) if approve else None
        if approve and button is None:
            raise PageError(f"no Authorize button on the consent page: {result.text[:300]!r}")
        result = browser.submit(result, form, button=button)
    if isinstance(result, Page):
        raise PageError(f"the server did not redirect to the callback: {result.text[:300]!r}")
    return follow_callback(result, timeout) if follow else Callback(result)


def follow_callback(location: str, timeout: float = 10.0) -> Callback:
    """Request the loopback callback as the browser would; refuses anything but http://127.0.0.1 or [::1]."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "::1"):
        raise PageError(f"refusing to follow {location!r}: not a loopback callback")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
    try:
        with opener.open(location, timeout=timeout) as response:
            return Callback(location, response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return Callback(location, exc.code, exc.read().decode("utf-8", "replace"))
