"""What a test needs to know about the platform it runs on, and the skips that follow, each with its reason.

`make test-windows` (ci/windows/lane.py) runs the unit, contract and integration tests under a Windows
CPython run by Wine: ``WINDOWS`` is then true, and ``UNDER_WINE`` too. A skip here names what differs on
Windows (README, "Windows"), or the gap in Wine that keeps a Windows behaviour from being shown here.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest

WINDOWS = os.name == "nt"


def _under_wine() -> bool:
    if not WINDOWS:
        return False
    import ctypes

    try:
        return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")
    except OSError:
        return False


UNDER_WINE = _under_wine()


@functools.cache
def symlinks_work() -> bool:
    """Whether this process can make a symlink that ``lstat`` then sees as one.

    Windows needs Developer Mode or the SeCreateSymbolicLink privilege; Wine 8 reports success and
    creates nothing."""
    with tempfile.TemporaryDirectory() as scratch:
        link = Path(scratch) / "link"
        try:
            link.symlink_to(Path(scratch) / "target")
        except (OSError, NotImplementedError):
            return False
        return link.is_symlink()


posix_modes = pytest.mark.skipif(
    WINDOWS, reason="POSIX permission bits: on Windows kitty-auth neither sets nor checks modes; the user "
    "profile's ACL protects the file")
needs_symlinks = pytest.mark.skipif(
    not symlinks_work(), reason="cannot create a symlink here (Windows needs Developer Mode or a privilege; "
    "Wine 8 creates none)")
posix_tracker_flock = pytest.mark.skipif(
    WINDOWS, reason="the spec-kitty host's tracker store flocks the credentials file (fcntl), which Windows "
    "does not have; kitty-auth takes that flock on POSIX only")
posix_pid_in_lock = pytest.mark.skipif(
    WINDOWS, reason="the lock holder's PID is written and checked on POSIX only (on Windows os.kill(pid, 0) "
    "would end the process)")
wine_tls_gap = pytest.mark.skipif(
    UNDER_WINE, reason="Wine 8's crypt32 rejects the chain-engine config (hExclusiveRoot) truststore uses to "
    "trust $SSL_CERT_FILE's CAs (E_INVALIDARG); real Windows supports it")

