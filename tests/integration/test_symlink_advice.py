"""A symlink at the credentials or lock path is refused with advice that does not follow it.

``chmod 600 <path>`` would follow the link and change its target's mode; the advice is to remove
the link (contract, messages table).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.errors import CredentialsFileError
from portability import WINDOWS, needs_symlinks


@needs_symlinks
@pytest.mark.parametrize("linked", ["credentials", "credentials.lock"])
def test_the_advice_for_a_symlink_is_to_remove_the_link_never_chmod(tmp_path: Path, linked: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "target"
    target.write_text("not ours\n")
    target.chmod(0o644)
    (home / linked).symlink_to(target)
    repo = TomlCredentialRepository(home / "credentials", lock_timeout=1.0)

    with pytest.raises(CredentialsFileError) as info:
        with repo.lock():
            repo.load()

    message = str(info.value)
    assert message.startswith("Cannot access credentials file. Check permissions.")
    assert f"({home / linked} is a symbolic link)" in message
    assert f"Try: rm {home / linked}" in message
    assert "chmod 600" not in message
    assert target.read_text() == "not ours\n"
    assert WINDOWS or target.stat().st_mode & 0o777 == 0o644  # no modes on Windows (portability.posix_modes)


def test_a_mode_problem_still_gets_the_chmod_advice(tmp_path: Path) -> None:
    error = CredentialsFileError(tmp_path / "credentials", "Permission denied")
    if WINDOWS:  # chmod means nothing there: the file's ACL, and no program keeping it open
        assert str(error).endswith(f"Try: check that your user account has full control of {tmp_path / 'credentials'} "
                                   "(Properties > Security) and that no other program keeps it open")
    else:
        assert str(error).endswith(f"Try: chmod 600 {tmp_path / 'credentials'}")
