"""EnvironmentMachineCredentials: the machine client's id and secret from the environment and a secret file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kitty_auth.adapters.machine_secrets import MAX_SECRET_BYTES, EnvironmentMachineCredentials
from kitty_auth.domain.machine import (
    CLIENT_ID_VARIABLE,
    SECRET_FILE_VARIABLE,
    SECRET_VARIABLE,
    MachineConfigurationError,
)

SECRET = "s3cret-machine-secret-value"


def source(**env: str) -> EnvironmentMachineCredentials:
    return EnvironmentMachineCredentials(env)


def secret_file(tmp_path: Path, content: bytes | str, mode: int = 0o600) -> Path:
    path = tmp_path / "machine-secret"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def read(path: Path, **env: str) -> str | None:
    return source(**{SECRET_FILE_VARIABLE: str(path)}, **env).secret()


@pytest.mark.parametrize(("content", "secret"), [
    (SECRET, SECRET),
    (SECRET + "\n", SECRET),  # echo "$SECRET" > file
    (SECRET + "\r\n", SECRET),
    ("  " + SECRET + "  ", "  " + SECRET + "  "),  # nothing else is removed
])
def test_the_file_is_the_secret_minus_one_trailing_newline(tmp_path: Path, content: str, secret: str) -> None:
    assert read(secret_file(tmp_path, content)) == secret


@pytest.mark.parametrize("content", [SECRET + "\n\n", SECRET + "\nsecond-line\n", "a\x00b", SECRET + "\r"])
def test_other_line_breaks_and_control_characters_are_refused(tmp_path: Path, content: str) -> None:
    with pytest.raises(MachineConfigurationError, match="line break or another control character") as caught:
        read(secret_file(tmp_path, content))
    assert "second-line" not in str(caught.value) and SECRET not in str(caught.value)


def test_the_file_wins_over_the_variable(tmp_path: Path) -> None:
    assert read(secret_file(tmp_path, "from-the-file\n"), **{SECRET_VARIABLE: "from-the-variable"}) == "from-the-file"


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_variables_count_as_unset(blank: str) -> None:
    env = source(**{CLIENT_ID_VARIABLE: blank, SECRET_FILE_VARIABLE: blank, SECRET_VARIABLE: blank})
    assert env.client_id() is None and env.secret() is None
    assert source(**{SECRET_FILE_VARIABLE: blank, SECRET_VARIABLE: SECRET}).secret() == SECRET


def test_the_variable_is_taken_as_is() -> None:
    assert source(**{SECRET_VARIABLE: " " + SECRET}).secret() == " " + SECRET
    with pytest.raises(MachineConfigurationError, match=SECRET_VARIABLE):
        source(**{SECRET_VARIABLE: SECRET + "\n"}).secret()


def test_the_client_id_loses_surrounding_blanks_and_may_not_hold_control_characters() -> None:
    assert source(**{CLIENT_ID_VARIABLE: " ci-bot\n"}).client_id() == "ci-bot"
    with pytest.raises(MachineConfigurationError, match=CLIENT_ID_VARIABLE):
        source(**{CLIENT_ID_VARIABLE: "ci\x1b[2Jbot"}).client_id()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(MachineConfigurationError) as caught:
        read(missing)
    assert str(missing) in str(caught.value) and "cannot be read" in str(caught.value)
    assert SECRET_FILE_VARIABLE in str(caught.value)


def test_a_directory_is_not_a_secret_file(tmp_path: Path) -> None:
    with pytest.raises(MachineConfigurationError, match="cannot be read|not a regular file"):
        read(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    done = threading.Event()
    errors: list[str] = []

    def attempt() -> None:
        try:
            read(fifo)
        except MachineConfigurationError as exc:
            errors.append(str(exc))
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(10), "reading a FIFO hung"
    assert errors and "not a regular file" in errors[0]


@pytest.mark.parametrize("content", [b"", b"\n", b"   \n"])
def test_an_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(MachineConfigurationError, match="is empty"):
        read(secret_file(tmp_path, content))


def test_a_huge_file_is_not_a_secret(tmp_path: Path) -> None:
    with pytest.raises(MachineConfigurationError, match="larger than"):
        read(secret_file(tmp_path, b"x" * (MAX_SECRET_BYTES + 1)))


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MachineConfigurationError, match="not UTF-8"):
        read(secret_file(tmp_path, b"\xff\xfe\xfa"))


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_secret_file_of_ours_open_to_other_users_is_refused_like_an_ssh_key(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, SECRET, mode)
    with pytest.raises(MachineConfigurationError) as caught:
        read(path)
    message = str(caught.value)
    assert f"mode {mode:04o}" in message and f"chmod 600 {path}" in message and SECRET not in message


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_closed_secret_file_is_read(tmp_path: Path, mode: int) -> None:
    assert read(secret_file(tmp_path, SECRET, mode)) == SECRET


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_another_users_file_is_not_judged_by_its_mode(tmp_path: Path) -> None:
    """A secret the CI system mounts (root's, 0444): we could not fix its mode, so it is read (as ssh does)."""
    path = secret_file(tmp_path, SECRET, 0o444)
    other_user = EnvironmentMachineCredentials({SECRET_FILE_VARIABLE: str(path)}, euid=lambda: path.stat().st_uid + 1)
    assert other_user.secret() == SECRET


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_symbolic_link_is_followed_for_reading(tmp_path: Path) -> None:
    target = secret_file(tmp_path, SECRET + "\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert read(link) == SECRET
