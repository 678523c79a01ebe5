"""Run spec-kitty's own v2.1.3 unit tests of `sync/auth.py` against the swap, in the host venv.

    python tests/host/upstream.py SPEC_KITTY_CHECKOUT_AT_v2.1.3 HOST_VENV_PYTHON

Not part of `make test`: those tests are not in spec-kitty-cli's sdist or wheel, so a fresh
clone has no package-index route to them. The three files are run from the checkout as they
are; only the one autouse fixture of their root conftest that matters here (the SaaS feature
gate on) is reproduced, because that conftest imports the rest of spec-kitty's test tree.
DESELECTED lists the tests that patch the original module's private internals, the patch, and the test in
tests/host that checks the same behaviour against the real host and server.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

FILES = ("tests/sync/test_credentials.py", "tests/sync/test_auth.py", "tests/agent/cli/commands/test_auth.py")

# Each of these replaces the original's own HTTP plumbing with a Mock: `patch.object(client, "_get_http_client")`
# (tests/sync/test_auth.py) or `patch("specify_cli.sync.auth.httpx.Client")` (the CLI tests). Both are private
# internals kitty-auth does not have (its requests go through its HTTP gateway, with its TLS, deadlines and log
# filtering): patch.object fails on the missing attribute, the patch target on the missing module attribute, and
# a mock could not answer for the server anyway. What each one checks runs against the real host and the
# reference server in tests/host/test_spec_kitty2_host.py, in the test named beside it.
_MOCK_CLIENT = "patch.object(client, '_get_http_client')"
_MOCK_HTTPX = "patch('specify_cli.sync.auth.httpx.Client')"
DESELECTED = {
    "tests/sync/test_auth.py::TestObtainTokens::test_obtain_tokens_success":
        (_MOCK_CLIENT, "test_login_status_logout"),
    "tests/sync/test_auth.py::TestObtainTokens::test_obtain_tokens_invalid_credentials":
        (_MOCK_CLIENT, "test_wrong_password_and_feature_gate"),
    "tests/sync/test_auth.py::TestObtainTokens::test_obtain_tokens_network_error":
        (_MOCK_CLIENT, "test_login_to_an_unreachable_server_says_so_and_stores_nothing"),
    "tests/sync/test_auth.py::TestRefreshTokens::test_refresh_tokens_success":
        (_MOCK_CLIENT, "test_expired_access_token_is_refreshed_once_and_the_team_kept"),
    "tests/sync/test_auth.py::TestRefreshTokens::test_refresh_tokens_does_not_leak_token":
        (_MOCK_CLIENT, "test_refresh_rejected_clears_the_session (and every test's leak check)"),
    "tests/sync/test_auth.py::TestGetAccessToken::test_get_access_token_refreshes_expired":
        (_MOCK_CLIENT, "test_expired_access_token_is_refreshed_once_and_the_team_kept"),
    "tests/sync/test_auth.py::TestGetTeamSlug::test_obtain_tokens_stores_team_slug":
        (_MOCK_CLIENT, "test_login_status_logout"),
    "tests/sync/test_auth.py::TestGetTeamSlug::test_obtain_tokens_no_team_slug_from_server":
        (_MOCK_CLIENT, "test_login_without_a_team_from_the_server"),
    "tests/sync/test_auth.py::TestGetTeamSlug::test_refresh_tokens_preserves_team_slug":
        (_MOCK_CLIENT, "test_expired_access_token_is_refreshed_once_and_the_team_kept"),
    "tests/sync/test_auth.py::TestGetTeamSlug::test_refresh_tokens_updates_team_slug_if_provided":
        (_MOCK_CLIENT, "test_refresh_takes_the_team_the_server_names_now"),
    "tests/sync/test_auth.py::TestSaasFeatureFlag::test_obtain_tokens_blocked_when_disabled":
        (_MOCK_CLIENT, "test_wrong_password_and_feature_gate"),
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_success":
        (_MOCK_HTTPX, "test_login_status_logout"),
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_invalid_credentials":
        (_MOCK_HTTPX, "test_wrong_password_and_feature_gate"),
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_blocks_account_switch_when_previous_scope_has_pending_events":
        (_MOCK_HTTPX, "test_account_switch_with_queued_events_is_blocked_unless_forced"),
    "tests/agent/cli/commands/test_auth.py::TestAuthLogin::test_login_allows_account_switch_with_force_even_when_previous_scope_has_pending_events":
        (_MOCK_HTTPX, "test_account_switch_with_queued_events_is_blocked_unless_forced"),
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
