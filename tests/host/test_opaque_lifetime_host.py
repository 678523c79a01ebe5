"""The opaque access token's lifetime kept in the credentials file (`[tokens] access_lifetime_s`) next to the real
spec-kitty 2.1.3 host: the host's own original CredentialStore still reads the file, and the swap keeps the key."""

from __future__ import annotations

import tomllib

import pytest

from host.conftest import Host

pytestmark = pytest.mark.e2e


def test_the_hosts_original_store_reads_a_file_with_the_lifetime(host: Host) -> None:
    host.server.set_options(opaque_tokens=True)
    host.server.set_lifetimes(access=600)
    assert host.login().returncode == 0
    tokens = tomllib.loads(host.credentials.read_text(encoding="utf-8"))["tokens"]
    assert tokens["access_lifetime_s"] == 600 and not tokens["access"].startswith("eyJ")
    run = host.python(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("original_auth", {str(host.venv.original_auth)!r})
        original = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(original)
        theirs = original.CredentialStore()
        assert theirs.get_access_token() and theirs.get_refresh_token() and theirs.is_access_token_valid()
        print("OK")
    """)
    assert run.returncode == 0 and "OK" in run.stdout, run.output
