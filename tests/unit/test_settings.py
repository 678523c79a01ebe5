"""Settings resolution: SPEC_KITTY_HOME, SPEC_KITTY_SAAS_URL, config.toml [sync] server_url, log level."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitty_auth.container import load_settings
from kitty_auth.domain.errors import AuthError
from kitty_auth.domain.model import DEFAULT_SERVER_URL


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    s = load_settings({})
    assert s.home == tmp_path / ".spec-kitty"
    assert s.server_url == DEFAULT_SERVER_URL and s.log_level == "WARNING"
    assert s.credentials_path == tmp_path / ".spec-kitty" / "credentials"


def test_env_beats_config_beats_default(tmp_path):
    write_config(tmp_path, '[sync]\nserver_url = "https://from-config.test"\n')
    env = {"SPEC_KITTY_HOME": str(tmp_path)}
    assert load_settings(env).server_url == "https://from-config.test"
    env["SPEC_KITTY_SAAS_URL"] = "https://from-env.test"
    assert load_settings(env).server_url == "https://from-env.test"


def test_config_without_sync_section_uses_default(tmp_path):
    write_config(tmp_path, '[other]\nx = 1\n')
    assert load_settings({"SPEC_KITTY_HOME": str(tmp_path)}).server_url == DEFAULT_SERVER_URL


@pytest.mark.parametrize("text", ["[sync\nserver_url = 1", '[sync]\nserver_url = 42\n'])
def test_bad_config_is_one_clear_error(tmp_path, text):
    write_config(tmp_path, text)
    with pytest.raises(AuthError, match="config.toml"):
        load_settings({"SPEC_KITTY_HOME": str(tmp_path)})


def test_log_level(tmp_path):
    env = {"SPEC_KITTY_HOME": str(tmp_path), "SPEC_KITTY_LOG_LEVEL": "debug"}
    assert load_settings(env).log_level == "DEBUG"
    env["SPEC_KITTY_LOG_LEVEL"] = "chatty"
    assert load_settings(env).log_level == "WARNING"


def test_explicit_home_argument_wins(tmp_path):
    other = tmp_path / "elsewhere"
    assert load_settings({"SPEC_KITTY_HOME": str(tmp_path)}, home=other).home == other
