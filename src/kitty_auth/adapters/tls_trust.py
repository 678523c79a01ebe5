"""TLS trust for every connection we open (HTTPS and wss): the OS trust store plus $SSL_CERT_FILE / $SSL_CERT_DIR.

:func:`build_ssl_context` uses truststore (the OS's own verification) and adds the CA bundle or
directory the environment names, so a corporate CA works the way it does for other tools; httpx's
and websockets' certifi defaults are never used. :func:`is_cert_verification_failure` recognises
a failed verification anywhere in an exception chain, so both transports report it as
TLSVerificationError. :func:`inspect_trust` says what is trusted, for `auth doctor`. This module
imports truststore; only network adapters (and the doctor) import it.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import sys
from collections.abc import Iterator

from kitty_auth.domain.doctor import CertificateSource, PathKind, TrustFacts
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


# --------------------------------------------------------------------------- what is trusted (`auth doctor`)


def _count_certificates(cafile: str) -> tuple[int, int]:
    """(certificates, CA certificates) in a PEM bundle, as OpenSSL loads it; ssl.SSLError/OSError when it does not load."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # empty: no default paths, so only this file is counted
    ctx.load_verify_locations(cafile=cafile)
    stats = ctx.cert_store_stats()
    return stats.get("x509", 0), stats.get("x509_ca", 0)


def _bundle_source(path: str) -> CertificateSource:
    if not os.path.exists(path):
        return CertificateSource("SSL_CERT_FILE", path, PathKind.MISSING)
    if not os.path.isfile(path):
        return CertificateSource("SSL_CERT_FILE", path, PathKind.OTHER)
    if not os.access(path, os.R_OK):
        return CertificateSource("SSL_CERT_FILE", path, PathKind.FILE, readable=False)
    try:
        total, ca = _count_certificates(path)
    except (ssl.SSLError, OSError, ValueError):
        return CertificateSource("SSL_CERT_FILE", path, PathKind.FILE, error="not a PEM file of certificates")
    return CertificateSource("SSL_CERT_FILE", path, PathKind.FILE, certificates=total, ca_certificates=ca)


def _directory_source(path: str) -> CertificateSource:
    if not os.path.exists(path):
        return CertificateSource("SSL_CERT_DIR", path, PathKind.MISSING)
    if not os.path.isdir(path):
        return CertificateSource("SSL_CERT_DIR", path, PathKind.OTHER)
    try:
        names = os.listdir(path)
    except OSError:
        return CertificateSource("SSL_CERT_DIR", path, PathKind.DIRECTORY, readable=False)
    hashed = sum(1 for name in names if _HASHED_NAME.fullmatch(name))  # OpenSSL looks certificates up by these
    return CertificateSource("SSL_CERT_DIR", path, PathKind.DIRECTORY, certificates=hashed)


_HASHED_NAME = re.compile(r"[0-9a-fA-F]{8}\.\d+")


def inspect_trust() -> TrustFacts:
    """What :func:`build_ssl_context` trusts here, as `auth doctor` reports it; never raises.

    Linux: the distribution's bundle that ``build_ssl_context`` adds (or OpenSSL's default file),
    with its CA count; macOS and Windows verify through the OS itself (truststore), nothing to count.
    """
    context_error: str | None = None
    try:
        build_ssl_context()
    except TLSVerificationError as exc:
        context_error = str(exc)
    os_verifier = truststore is not None and not sys.platform.startswith("linux")
    bundle = None if os_verifier else (_system_bundle_for_linux() if sys.platform.startswith("linux")
                                       else ssl.get_default_verify_paths().openssl_cafile)
    count: int | None = None
    if bundle is not None:
        try:
            count = _count_certificates(bundle)[1]
        except (ssl.SSLError, OSError, ValueError):
            count = 0
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    return TrustFacts(
        truststore=truststore is not None, os_verifier=os_verifier, system_bundle=bundle,
        system_certificates=count, context_error=context_error,
        cert_file=_bundle_source(cafile) if cafile else None,
        cert_dir=_directory_source(capath) if capath else None,
    )
