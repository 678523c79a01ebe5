"""End-to-end harness: runs the installed `kitty-auth` CLI (and the installed library) as subprocesses
against the reference server over TLS, always at DEBUG, and fails on any secret in any output."""

from __future__ import annotations

import base64
import functools
import hashlib
import locale
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer

BIN = Path(sys.executable).parent
# The Windows lane (ci/windows/lane.py) runs these tests on Linux with the user's side under Wine:
# it names the Windows CLI and interpreter here. Every process that plays the user's machine (the
# CLI, the library in a fresh interpreter, a process holding the lock) is then a Windows one.
WINDOWS_CLIENT = os.environ.get("KITTY_AUTH_E2E_WINDOWS") == "1"
CLI = os.environ.get("KITTY_AUTH_E2E_CLI") or str(BIN / ("kitty-auth.exe" if os.name == "nt" else "kitty-auth"))
PYTHON = os.environ.get("KITTY_AUTH_E2E_PYTHON") or sys.executable
HANG_LIMIT = 60  # generous upper bound: catches hangs, asserts nothing about speed

posix_client = pytest.mark.skipif(
    WINDOWS_CLIENT, reason="POSIX only: drives the CLI through a pseudo-terminal (pty) and Ctrl-C as SIGINT "
    "from the terminal; a Windows console has neither")


def client_path(path: Path) -> str:
    """``path`` as the CLI under test names it: under Wine the Linux root is drive Z:."""
    return "Z:" + str(path).replace("/", "\\") if WINDOWS_CLIENT else str(path)


@functools.cache
def client_output_encoding() -> str:
    """The encoding the CLI under test writes to a pipe: the locale's (Windows: the ANSI code page)."""
    if not WINDOWS_CLIENT:
        return locale.getpreferredencoding(False)
    probe = subprocess.run([PYTHON, "-c", "import locale; print(locale.getencoding())"], capture_output=True,
                           text=True, timeout=HANG_LIMIT, stdin=subprocess.DEVNULL, check=True)
    return probe.stdout.strip()


_TRUSTED_IN_WINDOWS: set[Path] = set()


def trust_in_windows(ca: Path) -> None:
    """Windows lane: add the server's CA to the Windows user's Root store, once per CA.

    Wine 8's crypt32 cannot trust $SSL_CERT_FILE's CAs through truststore (ci/windows/trust_ca.py
    says why), so there the OS store is what trusts the test server (SSL_CERT_FILE is still set).
    """
    if ca in _TRUSTED_IN_WINDOWS:
        return
    script = Path(os.environ["KITTY_AUTH_E2E_TRUST_CA"])
    subprocess.run([PYTHON, client_path(script), client_path(ca)], check=True, capture_output=True,
                   timeout=HANG_LIMIT, stdin=subprocess.DEVNULL)
    _TRUSTED_IN_WINDOWS.add(ca)


_VERIFIER_RUN = re.compile(r"[A-Za-z0-9._~-]{43,}")


def pkce_verifiers_in(text: str, challenges: set[str]) -> list[str]:
    """Substrings of ``text`` whose S256 challenge is one of ``challenges`` (the verifier is never seen
    directly: only its challenge travels in the authorization URL). Checks every 43-character window
    (our verifiers' length) and every whole run of verifier characters."""
    if not challenges:
        return []

    def challenge(candidate: str) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(candidate.encode()).digest()).rstrip(b"=").decode()

    found = []
    for run in _VERIFIER_RUN.findall(text):
        windows = {run[i:i + 43] for i in range(len(run) - 42)} | ({run} if len(run) <= 128 else set())
        found += [w for w in windows if challenge(w) in challenges]
    return found


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class E2E:
    """One user's machine: a spec-kitty home, the env the CLI sees, and every secret seen so far."""

    server: RefServer
    home: Path
    secrets: set[str] = field(default_factory=set)
    pkce_challenges: set[str] = field(default_factory=set)  # S256 challenges seen: their verifiers are secrets
    outputs: list[str] = field(default_factory=list)
    client_secrets: set[str] = field(default_factory=set)  # machine clients': also never in any file of the home
    extra_env: dict[str, str] = field(default_factory=dict)  # every process of this machine gets these too

    @property
    def credentials(self) -> Path:
        return self.home / "credentials"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEC_KITTY_", "SSL_CERT"))}
        env.update(
            SPEC_KITTY_HOME=client_path(self.home),
            SPEC_KITTY_SAAS_URL=self.server.url,
            SSL_CERT_FILE=client_path(self.server.ca_path),
            SPEC_KITTY_LOG_LEVEL="DEBUG",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(extra)
        if env.get("SPEC_KITTY_SAAS_TOKEN", "").strip():  # an access token from the environment: a secret too
            self.secrets.add(env["SPEC_KITTY_SAAS_TOKEN"].strip())
        return env

    def machine_client(self, client_id: str = "ci-bot", **kwargs: str) -> str:
        """Register a machine client on the server (refserver.machine); its secret joins the leak check."""
        secret = self.server.create_machine_client(client_id, **kwargs)
        self.client_secrets.add(secret)
        self.secrets.add(secret)
        return secret

    def remember_tokens(self) -> None:
        """Add the tokens now on disk to the secrets that must never appear in any output."""
        try:
            data = tomllib.loads(self.credentials.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return
        others = data.get("other_sessions") if isinstance(data.get("other_sessions"), list) else []
        for session in [data, *others]:  # the active session and the other stored ones
            tokens = session.get("tokens") if isinstance(session, dict) and isinstance(session.get("tokens"), dict) else {}
            self.secrets.update(v for k, v in tokens.items() if k in ("access", "refresh") and isinstance(v, str))

    def _record(self, run: Run, *, prints_a_token: bool = False) -> Run:
        """Keep ``run``'s output for the leak check. ``prints_a_token`` (`auth token`, the one command that prints
        a token, by request): its stdout must be that token alone, one line or nothing; its stderr is checked."""
        self.remember_tokens()
        if prints_a_token:
            assert run.stdout == "" or (run.stdout.count("\n") == 1 and run.stdout.endswith("\n")
                                        and len(run.stdout.split()) == 1), "auth token printed more than a token"
        self.outputs.append(run.stderr if prints_a_token else run.output)
        assert "Traceback" not in run.output, run.output
        return run

    def token(self, *args: str, timeout: float = HANG_LIMIT, **env: str) -> Run:
        """`auth token ARGS` (see ``_record``: its stdout is a token, by request)."""
        proc = subprocess.run([CLI, "auth", "token", *args], capture_output=True, text=True, env=self.env(**env),
                              timeout=timeout, stdin=subprocess.DEVNULL)
        return self._record(Run(["token", *args], proc.returncode, proc.stdout, proc.stderr), prints_a_token=True)

    def cli(self, *args: str, input: str | None = None, timeout: float = HANG_LIMIT, **env: str) -> Run:
        # Input as UTF-8 (what --password-stdin reads everywhere); output in the CLI's own encoding for
        # a pipe (Windows: its ANSI code page), newlines as text mode would give them.
        proc = subprocess.run([CLI, "auth", *args], input=input.encode("utf-8") if input is not None else None,
                              capture_output=True, env=self.env(**env), timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        encoding = client_output_encoding()
        stdout, stderr = (out.decode(encoding).replace("\r\n", "\n") for out in (proc.stdout, proc.stderr))
        return self._record(Run(list(args), proc.returncode, stdout, stderr))

    def login(self, username: str = DEMO_USERNAME, password: str = DEMO_PASSWORD, *extra: str, **env: str) -> Run:
        self.secrets.add(password)
        return self.cli("login", "-u", username, "--password-stdin", *extra, input=password + "\n", **env)

    def library(self, code: str, timeout: float = HANG_LIMIT, **env: str) -> Run:
        """Run ``code`` with the installed library in a fresh interpreter (what the host CLI does).

        The code may append secret values it handles (ws tokens) to the file named by
        $E2E_SECRETS_OUT, one per line: they join the leak check.
        """
        out = self.home.parent / "secrets-out.txt"
        proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True,
                              env=self.env(E2E_SECRETS_OUT=client_path(out), **env), timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if out.exists():
            self.secrets.update(line for line in out.read_text().splitlines() if line)
        return self._record(Run(["python", "-c", code], proc.returncode, proc.stdout, proc.stderr))

    def server_log(self) -> str:
        """The server's log without its start-up banner, which shows the seeded demo password to
        whoever started the server by hand (printed once, before any request: not a leak of ours)."""
        text = self.server.log_path.read_text(errors="replace")
        return re.sub(r"(?ms)^refserver ready on .*?^  stop with Ctrl-C$", "", text, count=1)

    def assert_no_leaks(self) -> None:
        self.remember_tokens()
        secrets = {s for s in self.secrets if len(s) >= 8}
        # A JWT's header part is predictable, so its payload or signature alone is as good as
        # the whole token: look for those too (both are unique per token).
        secrets |= {part for s in list(secrets) if s.count(".") == 2 for part in s.split(".")[1:] if len(part) >= 16}
        for text in self.outputs + [self.server_log()]:
            for secret in secrets:
                assert secret not in text, "a secret value leaked into output or a log"
            assert not pkce_verifiers_in(text, self.pkce_challenges), "a PKCE verifier leaked into output or a log"
        if self.client_secrets and self.home.exists():  # never stored: not in the credentials file nor beside it
            for path in self.home.rglob("*"):
                if path.is_file():
                    data = path.read_bytes()
                    assert not any(s.encode() in data for s in self.client_secrets), f"a client secret is in {path}"


@pytest.fixture
def server(fresh_refserver_state: RefServer, monkeypatch: pytest.MonkeyPatch) -> RefServer:
    """The reference server, trusted by in-process clients of this test (SSL_CERT_FILE), no proxies."""
    monkeypatch.setenv("SSL_CERT_FILE", str(fresh_refserver_state.ca_path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SPEC_KITTY_SAAS_URL", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return fresh_refserver_state


@pytest.fixture
def e2e(fresh_refserver_state: RefServer, tmp_path: Path) -> Iterator[E2E]:
    if WINDOWS_CLIENT:
        trust_in_windows(fresh_refserver_state.ca_path)
    world = E2E(server=fresh_refserver_state, home=tmp_path / "spec-kitty-home")
    yield world
    world.assert_no_leaks()
