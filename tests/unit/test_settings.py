"""Settings resolution: SPEC_KITTY_HOME, SPEC_KITTY_SAAS_URL, config.toml [sync] server_url (kept, not raised,
when unreadable), log level (an unknown one is a warning)."""

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
    monkeypatch.setenv("USERPROFILE", str(tmp_path))  # Path.home() on Windows
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


@pytest.mark.parametrize(("text", "cause"), [
    ("[sync\nserver_url = 1", "not valid TOML at line 1, column 6: expected ']' at the end of a table declaration"),
    ('[sync]\nserver_url = 42\n', "[sync] server_url must be a string"),
    ('[sync]\nserver_url = "\\q"\n', "not valid TOML at line 2, column 17: unescaped '\\' in a string"),
])
def test_bad_config_is_kept_and_raised_only_when_the_url_is_needed(tmp_path, text, cause):
    write_config(tmp_path, text)
    settings = load_settings({"SPEC_KITTY_HOME": str(tmp_path)})  # does not raise: status and logout go on
    assert settings.config_error is not None
    assert str(settings.config_error) == f"The config file {tmp_path / 'config.toml'} cannot be read ({cause}); fix or remove it."
    assert settings.config_error.warning.endswith(f"({cause}); it was ignored.")
    for attribute in ("configured_server_url", "server_url"):
        with pytest.raises(AuthError, match="config.toml"):
            getattr(settings, attribute)


def test_config_that_is_not_utf8_or_not_a_file(tmp_path):
    write_config(tmp_path, "")
    (tmp_path / "config.toml").write_bytes(b'[sync]\nserver_url = "\xff"\n')
    assert "not UTF-8 text" in str(load_settings({"SPEC_KITTY_HOME": str(tmp_path)}).config_error)
    (tmp_path / "config.toml").unlink()
    (tmp_path / "config.toml").mkdir()
    assert "Is a directory" in str(load_settings({"SPEC_KITTY_HOME": str(tmp_path)}).config_error)


def test_config_is_not_read_when_the_environment_names_the_server(tmp_path):
    write_config(tmp_path, "[sync\n")
    settings = load_settings({"SPEC_KITTY_HOME": str(tmp_path), "SPEC_KITTY_SAAS_URL": "https://from-env.test"})
    assert settings.config_error is None and settings.server_url == "https://from-env.test"


def test_where_the_url_came_from(tmp_path):
    env = {"SPEC_KITTY_HOME": str(tmp_path)}
    nothing = load_settings(env)
    assert (nothing.configured_server_url, nothing.server_url_source) == (None, None)
    assert nothing.server_url == DEFAULT_SERVER_URL
    write_config(tmp_path, '[sync]\nserver_url = "https://from-config.test"\n')
    assert load_settings(env).server_url_source == f"[sync] server_url in {tmp_path / 'config.toml'}"
    env["SPEC_KITTY_SAAS_URL"] = "https://from-env.test"
    assert load_settings(env).server_url_source == "SPEC_KITTY_SAAS_URL"


def test_log_level(tmp_path):
    env = {"SPEC_KITTY_HOME": str(tmp_path)}
    default = load_settings(env)
    assert (default.log_level, default.log_level_explicit, default.warnings) == ("WARNING", False, ())
    env["SPEC_KITTY_LOG_LEVEL"] = "debug"
    chosen = load_settings(env)
    assert (chosen.log_level, chosen.log_level_explicit, chosen.warnings) == ("DEBUG", True, ())
    env["SPEC_KITTY_LOG_LEVEL"] = "chatty"
    unknown = load_settings(env)
    assert (unknown.log_level, unknown.log_level_explicit) == ("WARNING", False)
    assert unknown.warnings == (
        "SPEC_KITTY_LOG_LEVEL='chatty' is not one of DEBUG, INFO, WARNING, ERROR; using WARNING.",)


def test_explicit_home_argument_wins(tmp_path):
    other = tmp_path / "elsewhere"
    assert load_settings({"SPEC_KITTY_HOME": str(tmp_path)}, home=other).home == other
