"""The real spec-kitty 2.x host with kitty-auth swapped in, against the reference server, at DEBUG, with the leak check.

A session fixture builds (once per repository path, Python version and host version, then
cached in the temp folder) a venv with spec-kitty-cli 2.1.3 from the package index, click
(its typer no longer pulls it in) and this repository installed editable, then replaces the
host's ``specify_cli/sync/auth.py`` by the one-line swap. The host's original module is kept
beside the venv (``host-original/auth_2_1_3.py``, outside the package) for the tests that
check files written by one side are read by the other. First build: about 20 s with a warm
pip cache (needs the package index); afterwards only the swap is re-checked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from e2e.conftest import E2E, HANG_LIMIT, Run
from refserver.harness import RefServer

REPO = Path(__file__).resolve().parents[2]
HOST_REQUIREMENTS = ("spec-kitty-cli==2.1.3", "click")
SWAP = "from kitty_auth.spec_kitty2 import *  # noqa: F401,F403 (kitty-auth replaces this module)\n"
# Runs the host's own CLI entry point (the `spec-kitty` console script of spec-kitty-cli) with every logger at
# DEBUG on stderr: the host configures no logging (SPEC_KITTY_LOG_LEVEL means nothing to it), so without this the
# leak check would never see what kitty-auth and the libraries log inside the host.
HOST_MAIN = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
    "from specify_cli import main; sys.argv[0] = 'spec-kitty'; sys.exit(main())"
)


@dataclass(frozen=True)
class HostVenv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        out = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())

    @property
    def original_auth(self) -> Path:
        """spec-kitty-cli 2.1.3's own sync/auth.py, kept outside the package."""
        return self.root / "host-original" / "auth_2_1_3.py"


def _venv_dir() -> Path:
    key = hashlib.sha256(repr((str(REPO), sys.version, HOST_REQUIREMENTS)).encode()).hexdigest()[:16]
    return Path(os.environ.get("KITTY_AUTH_HOST_VENV") or Path(tempfile.gettempdir()) / f"kitty-auth-host-{key}")


def _pip(venv: HostVenv, *args: str) -> None:
    # --isolated and no config file: from PyPI only, like the locked environments (the machine's pip
    # configuration may add local indexes and constraints).
    subprocess.run([str(venv.python), "-m", "pip", "install", "--isolated", "--quiet", "--disable-pip-version-check",
                    *args], check=True, stdin=subprocess.DEVNULL, timeout=900,
                   env={**os.environ, "PIP_CONFIG_FILE": os.devnull})


def _build(venv: HostVenv) -> None:
    shutil.rmtree(venv.root, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv.root)], check=True, timeout=300)
    _pip(venv, *HOST_REQUIREMENTS)
    _pip(venv, "-e", str(REPO))
    auth = venv.site_packages / "specify_cli" / "sync" / "auth.py"
    venv.original_auth.parent.mkdir(exist_ok=True)
    shutil.copyfile(auth, venv.original_auth)
    (venv.root / ".ready").write_text("ok\n")


@pytest.fixture(scope="session")
def host_venv() -> HostVenv:
    venv = HostVenv(_venv_dir())
    venv.root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv.root) + ".build-lock"):
        if not (venv.root / ".ready").exists():
            _build(venv)
        auth = venv.site_packages / "specify_cli" / "sync" / "auth.py"
        if auth.read_text() != SWAP:
            auth.write_text(SWAP)
    return venv


@dataclass
class Host(E2E):
    """One user's machine running the spec-kitty 2.x host: its HOME, its config, the leak check."""

    venv: HostVenv | None = None

    @property
    def spec_kitty_dir(self) -> Path:
        return self.home / ".spec-kitty"

    @property
    def credentials(self) -> Path:
        return self.spec_kitty_dir / "credentials"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SPEC_KITTY_", "SSL_CERT", "REQUESTS_CA", "CURL_CA", "PYTHON")) and k.lower() not in (
                   "https_proxy", "http_proxy", "all_proxy")}
        # The host's batch upload uses requests, which trusts REQUESTS_CA_BUNDLE rather than SSL_CERT_FILE.
        env.update(HOME=str(self.home), SSL_CERT_FILE=str(self.server.ca_path),
                   REQUESTS_CA_BUNDLE=str(self.server.ca_path), SPEC_KITTY_ENABLE_SAAS_SYNC="1",
                   SPEC_KITTY_LOG_LEVEL="DEBUG", PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def host(self, *args: str, input: str | None = None, timeout: float = HANG_LIMIT, **env: str) -> Run:
        """The host's own `spec-kitty` command line."""
        proc = subprocess.run([str(self.venv.python), "-c", HOST_MAIN, *args], input=input, capture_output=True,
                              text=True, env=self.env(**env), timeout=timeout, cwd=self.home,
                              stdin=None if input is not None else subprocess.DEVNULL)
        return self._record(Run(list(args), proc.returncode, proc.stdout, proc.stderr))

    def python(self, code: str, timeout: float = HANG_LIMIT, **env: str) -> Run:
        """``code`` in the host's venv, logging everything at DEBUG to stderr (the leak check reads it).

        ``SECRET(value)`` adds a value the code handles (a ws token) to the leak check.
        """
        proc = subprocess.run([str(self.venv.python), "-c", self.prelude() + textwrap.dedent(code)],
                              capture_output=True, text=True, env=self.env(**env), timeout=timeout, cwd=self.home,
                              stdin=subprocess.DEVNULL)
        self.collect_secrets()
        return self._record(Run(["python", "-c", code], proc.returncode, proc.stdout, proc.stderr))

    @property
    def _secrets_out(self) -> Path:
        return self.home.parent / "secrets-out.txt"

    def prelude(self) -> str:
        """DEBUG logging to stderr and ``SECRET(value)``, which adds a value to the leak check."""
        return textwrap.dedent(f"""\
            import logging, sys
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
            def SECRET(value):
                with open({str(self._secrets_out)!r}, "a") as fh:
                    fh.write(value + "\\n")
            """)

    def collect_secrets(self) -> None:
        if self._secrets_out.exists():
            self.secrets.update(line for line in self._secrets_out.read_text().splitlines() if line)

    def login(self, username: str | None = None, password: str | None = None, *extra: str, **env: str) -> Run:  # type: ignore[override]
        from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME

        username, password = username or DEMO_USERNAME, password or DEMO_PASSWORD
        self.secrets.add(password)
        return self.host("auth", "login", "--username", username, "--password", password, *extra, **env)


# Every host test runs with a second account stored beside whatever the host does (kitty-auth keeps the
# sessions of other accounts under [[other_sessions]]): the host sees only the active session, and its
# login, refresh and logout must leave the other one alone.
SECOND_ACCOUNT = {
    "access": "second-account-access-9f2c1e7a5b3d",
    "refresh": "second-account-refresh-4e8a6c2f0d1b",
    "username": "ci-bot@other.example",
    "server": "https://other.example",
}
SECOND_ACCOUNT_TEXT = f"""\
# Other sessions, kept by kitty-auth (`kitty-auth auth switch` makes one the active one).
[[other_sessions]]
last_used = "2026-12-01T00:00:00Z"

[other_sessions.tokens]
access = "{SECOND_ACCOUNT['access']}"
refresh = "{SECOND_ACCOUNT['refresh']}"
access_expires_at = "2099-01-01T00:00:00Z"
refresh_expires_at = "2099-01-01T00:00:00Z"

[other_sessions.user]
username = "{SECOND_ACCOUNT['username']}"

[other_sessions.server]
url = "{SECOND_ACCOUNT['server']}"
"""


def second_account_kept(credentials: Path) -> bool:
    """The second account is still stored, unchanged, among the other sessions."""
    import tomllib

    others = tomllib.loads(credentials.read_text(encoding="utf-8")).get("other_sessions", [])
    return any(o.get("tokens", {}).get("refresh") == SECOND_ACCOUNT["refresh"]
               and o.get("user", {}).get("username") == SECOND_ACCOUNT["username"] for o in others)


@pytest.fixture
def host(host_venv: HostVenv, fresh_refserver_state: RefServer, tmp_path: Path,
         request: pytest.FixtureRequest) -> Iterator[Host]:
    home = tmp_path / "home"
    world = Host(server=fresh_refserver_state, home=home, venv=host_venv)
    world.spec_kitty_dir.mkdir(parents=True, mode=0o700)
    (world.spec_kitty_dir / "config.toml").write_text(f'[sync]\nserver_url = "{fresh_refserver_state.url}"\n')
    seeded = "without_second_account" not in request.keywords
    if seeded:
        world.credentials.write_text(SECOND_ACCOUNT_TEXT, encoding="utf-8")
        world.credentials.chmod(0o600)
        world.secrets.update({SECOND_ACCOUNT["access"], SECOND_ACCOUNT["refresh"]})
    yield world
    world.assert_no_leaks()
    if seeded and world.credentials.exists():
        assert second_account_kept(world.credentials), "the host's commands lost the second stored account"
