"""TLS trust for every connection we open (HTTPS and wss): the OS trust store plus $SSL_CERT_FILE / $SSL_CERT_DIR.

:func:`build_ssl_context` uses truststore (the OS's own verification) and adds the CA bundle or
directory the environment names, so a corporate CA works the way it does for other tools; httpx's
and websockets' certifi defaults are never used. :func:`is_cert_verification_failure` recognises
a failed verification anywhere in an exception chain, so both transports report it as
TLSVerificationError. This module imports truststore; only network adapters import it.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from collections.abc import Iterator

from kitty_auth.domain.errors import TLSVerificationError

try:  # truststore raises ImportError on platforms/implementations it cannot support
    import truststore
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    truststore = None  # type: ignore[assignment]

logger = logging.getLogger("kitty_auth.http")


def _system_bundle_for_linux() -> str | None:
    """The distribution CA bundle, ignoring $SSL_CERT_FILE (which replaces it in OpenSSL)."""
    paths = ssl.get_default_verify_paths()
    candidates = [
        paths.openssl_cafile,
        "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora, RHEL
        "/etc/pki/tls/cert.pem",
        "/etc/ssl/cert.pem",
        "/etc/ssl/ca-bundle.pem",  # SUSE
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _load_extra_trust(ctx: ssl.SSLContext, *, add_system_bundle: bool) -> None:
    cafile = os.environ.get("SSL_CERT_FILE")
    capath = os.environ.get("SSL_CERT_DIR")
    try:
        if cafile and os.path.isfile(cafile):
            if add_system_bundle:
                # On Linux, OpenSSL treats $SSL_CERT_FILE as a *replacement* for the system
                # bundle when truststore calls set_default_verify_paths(); load the system
                # bundle explicitly so the env var only adds trust.
                bundle = _system_bundle_for_linux()
                if bundle and os.path.realpath(bundle) != os.path.realpath(cafile):
                    ctx.load_verify_locations(cafile=bundle)
            ctx.load_verify_locations(cafile=cafile)
        elif cafile:
            logger.debug("SSL_CERT_FILE is set but is not a file; ignored")
        if capath and os.path.isdir(capath):
            # Note: on macOS/Windows truststore only sees CAs loaded eagerly (cafile), not
            # lazily-loaded capath directories; SSL_CERT_DIR is effective on Linux.
            ctx.load_verify_locations(capath=capath)
    except (ssl.SSLError, OSError, ValueError):
        raise TLSVerificationError(
            "The CA bundle named by SSL_CERT_FILE or SSL_CERT_DIR could not be loaded; "
            "check that it is a PEM file of CA certificates."
        ) from None


def build_ssl_context() -> ssl.SSLContext:
    """The client SSL context: OS trust store (truststore) plus $SSL_CERT_FILE / $SSL_CERT_DIR.

    Falls back to ``ssl.create_default_context()`` (OpenSSL's default paths) plus the same
    variables when truststore cannot be used on this platform. Hostname checking and
    certificate verification are always on; TLS 1.2 is the minimum.
    """
    ctx: ssl.SSLContext | None = None
    if truststore is not None:
        try:
            ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, RuntimeError, ValueError, NotImplementedError):  # pragma: no cover
            ctx = None
    if ctx is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        _load_extra_trust(ctx, add_system_bundle=False)
    else:
        _load_extra_trust(ctx, add_system_bundle=sys.platform.startswith("linux"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts, each once (a cycle ends the walk)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_cert_verification_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or anything in its cause chain) is a failed certificate verification."""
    return any(
        isinstance(c, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(c)
        for c in error_chain(exc)
    )
