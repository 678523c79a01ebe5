"""Run spec-kitty's own v2.1.3 unit tests of `sync/auth.py` against the swap, in the host venv.

    python tests/host/upstream.py SPEC_KITTY_CHECKOUT_AT_v2.1.3 HOST_VENV_PYTHON

Not part of `make test`: those tests are not in spec-kitty-cli's sdist or wheel, so a fresh
clone has no package-index route to them. The three files are run from the checkout as they
are; only the one autouse fixture of their root conftest that matters here (the SaaS feature
gate on) is reproduced, because that conftest imports the rest of spec-kitty's test tree.
DESELECTED lists the tests that patch the original module's private internals and why.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

FILES = ("tests/sync/test_credentials.py", "tests/sync/test_auth.py", "tests/agent/cli/commands/test_auth.py")

# Each of these replaces the original's own HTTP plumbing with a Mock: `patch.object(client, "_get_http_client")`
# or `patch("specify_cli.sync.auth.httpx.Client")`. kitty-auth has neither (its requests go through its HTTP
# gateway, with its TLS, deadlines and log filtering), so the mock never answers and the test cannot apply.
# The behaviour each one checks is covered against the real host and the reference server in tests/host.
_PRIVATE_HTTP = "patches the original's private HTTP client"
DESELECTED = {
    "tests/sync/test_auth.py::TestObtainTokens::test_obtain_tokens_success": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestObtainTokens::test_obtain_tokens_invalid_credentials": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestObtainTokens::test_obtain_tokens_network_error": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestRefreshTokens::test_refresh_tokens_success": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestRefreshTokens::test_refresh_tokens_does_not_leak_token": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestGetAccessToken::test_get_access_token_refreshes_expired": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestGetTeamSlug::test_obtain_tokens_stores_team_slug": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestGetTeamSlug::test_obtain_tokens_no_team_slug_from_server": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestGetTeamSlug::test_refresh_tokens_preserves_team_slug": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestGetTeamSlug::test_refresh_tokens_updates_team_slug_if_provided": _PRIVATE_HTTP,
    "tests/sync/test_auth.py::TestSaasFeatureFlag::test_obtain_tokens_blocked_when_disabled": _PRIVATE_HTTP,
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_success": _PRIVATE_HTTP,
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_invalid_credentials": _PRIVATE_HTTP,
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_blocks_account_switch_when_previous_scope_has_pending_events": _PRIVATE_HTTP,
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_allows_account_switch_with_force_even_when_previous_scope_has_pending_events": _PRIVATE_HTTP,
}

CONFTEST = '''\
import pytest

def pytest_configure(config):
    config.addinivalue_line("markers", "fast: spec-kitty's marker")

@pytest.fixture(autouse=True)
def _enable_saas_sync_feature_flag(monkeypatch):
    monkeypatch.setenv("SPEC_KITTY_ENABLE_SAAS_SYNC", "1")
'''


def main(checkout: Path, python: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in FILES:
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text((checkout / name).read_text())
        (root / "conftest.py").write_text(CONFTEST)
        args = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--import-mode=importlib", "-q", "-rA", *FILES]
        args += [f"--deselect={test}" for test in DESELECTED]
        return subprocess.run(args, cwd=root, check=False).returncode



if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: upstream.py SPEC_KITTY_CHECKOUT HOST_VENV_PYTHON")
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
