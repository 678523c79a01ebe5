"""`make demo`: the main job end to end against the local reference server, narrated for a newcomer.

Starts the reference server (Django + simplejwt over TLS on 127.0.0.1), then, in a throw-away
spec-kitty home, runs the installed `kitty-auth` CLI to log in, show status, obtain a ws token
(through the library, as spec-kitty's live sync does), print a token for scripts (`auth token`),
add a second account, `switch` between them, run `doctor`, and log out of both; then logs in again with an
OAuth device code (approved on the server's pages over HTTPS, as a user would in a browser) and
logs out with revocation. Stops the server at the end,
whatever happens; nothing is left running and your own ~/.spec-kitty is never touched.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer  # noqa: E402

BIN = Path(sys.executable).parent
CLI = str(BIN / ("kitty-auth.exe" if os.name == "nt" else "kitty-auth"))

WS_DEMO = """
import asyncio, kitty_auth

async def main():
    client = kitty_auth.AuthClient()
    ws = client.obtain_ws_token()
    print(f"obtained a ws token (value not shown) that expires in {ws.expires_in} s, at {ws.expires_at:%H:%M:%S} UTC")
    if hasattr(kitty_auth, "WebSocketClient"):
        try:
            async with kitty_auth.WebSocketClient(client) as live:
                message = await asyncio.wait_for(live.receive(), 10)
                print(f"live sync connected over wss://; first message type: {message.get('type')!r}")
        except (ImportError, AttributeError):
            pass
    client.close()

asyncio.run(main())
"""


def step(title: str) -> None:
    print(f"\n==> {title}")


def run(args: list[str], env: dict[str, str], stdin: str | None = None, shown: str | None = None) -> int:
    print("$ " + (shown or " ".join(shlex.quote(a) for a in args)))
    proc = subprocess.run(args, env=env, input=stdin, text=True, capture_output=True, timeout=60)
    for line in (proc.stdout + proc.stderr).splitlines():
        print("  " + line)
    print(f"  (exit code {proc.returncode})")
    return proc.returncode


def device_login_and_revoke(server: RefServer, env: dict[str, str]) -> int:
    """spec-kitty 3.x's way in: a device code approved in a browser, then a logout that revokes the session.

    The demo approves on the server's own pages over HTTPS (sign in, confirm the code), as the user
    would in a browser on their phone or laptop.
    """
    failures = 0
    step("OAuth device login (RFC 8628), as on a headless or SSH machine: the CLI shows a code and waits")
    print("$ kitty-auth auth login --device")
    proc = subprocess.Popen([CLI, "auth", "login", "--device"], env=env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdout is not None
    shown: list[str] = []
    for line in proc.stderr:  # the instructions, as the user reads them
        shown.append(line.rstrip("\n"))
        print("  " + shown[-1])
        if line.startswith("The code expires in"):
            break
    urls = [line.strip() for line in shown if line.strip().startswith("https://")]
    if not urls:
        proc.kill()
        print("  (no verification URL was shown)")
        return 1
    print(f"  [the user opens {urls[0]} in a browser, signs in as {DEMO_USERNAME} and approves the device]")
    server.approve_device(urls[0])
    rest = proc.stderr.read()
    out = proc.stdout.read()
    code = proc.wait(timeout=60)
    for line in (rest + out).splitlines():
        print("  " + line)
    print(f"  (exit code {code})")
    failures += code != 0

    step("Status shows the identity, team and login method from the server's /api/v1/me")
    failures += run([CLI, "auth", "status"], env) != 0
    refresh = tomllib.loads((Path(env["SPEC_KITTY_HOME"]) / "credentials").read_text())["tokens"]["refresh"]

    step("Log out: the file is removed first, then the server revokes the session (RFC 7009)")
    failures += run([CLI, "auth", "logout"], env) != 0
    accepted = server.refresh_token_accepted(refresh)
    print(f"  the server {'still accepts' if accepted else 'now refuses'} the old refresh token")
    failures += accepted
    return failures


SECOND_USER, SECOND_PASSWORD = "ci-bot@spec-kitty.test", "ci-bot-demo-password"


def accounts_token_and_doctor(server: RefServer, env: dict[str, str]) -> int:
    """Scripts and several accounts: `auth token`, a second account, `switch`, `whoami`, `doctor`."""
    failures = 0
    step("A token for scripts: `auth token` prints the access token and nothing else (shown masked here)")
    print("$ TOKEN=$(kitty-auth auth token)")
    proc = subprocess.run([CLI, "auth", "token"], env=env, text=True, capture_output=True, timeout=60)
    token = proc.stdout.strip()
    print(f"  (exit code {proc.returncode}; stdout: one line, a {len(token)}-character token, "
          f"{'no other output' if proc.stdout == token + chr(10) else 'something else too'})")
    failures += proc.returncode != 0 or proc.stdout != token + "\n"

    server.create_user(SECOND_USER, SECOND_PASSWORD, team_slug="bots")
    step(f"A second account ({SECOND_USER}): logging in adds it and makes it the active one")
    failures += run([CLI, "auth", "login", "-u", SECOND_USER, "--password-stdin"], env, stdin=SECOND_PASSWORD + "\n",
                    shown=f"echo '********' | kitty-auth auth login -u {SECOND_USER} --password-stdin") != 0
    failures += run([CLI, "auth", "status", "--all"], env) != 0
    failures += run([CLI, "auth", "whoami"], env) != 0

    step("Switch back: with two sessions, `switch` takes the other one")
    failures += run([CLI, "auth", "switch"], env) != 0
    failures += run([CLI, "auth", "whoami"], env) != 0

    step("Doctor: what is set up, and what to fix (`--offline` sends nothing; here it asks the server too)")
    failures += run([CLI, "auth", "doctor"], env) != 0
    return failures


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="kitty-auth-demo-") as tmp:
        step("Starting the local reference server (Django REST framework + simplejwt, TLS on loopback)")
        with RefServer(Path(tmp) / "server") as server:
            print(f"  listening on {server.url}; its test CA is {server.ca_path}")
            home = Path(tmp) / "home"
            env = {k: v for k, v in os.environ.items() if not k.startswith("SPEC_KITTY_")}
            env.update(SPEC_KITTY_HOME=str(home), SPEC_KITTY_SAAS_URL=server.url,
                       SSL_CERT_FILE=str(server.ca_path))
            print(f"  using a throw-away SPEC_KITTY_HOME={home}")
            print(f"  SPEC_KITTY_SAAS_URL={server.url}  SSL_CERT_FILE=<the test CA>")

            step("Before logging in, status says so (exit code 1)")
            failures += run([CLI, "auth", "status"], env) != 1

            step(f"Log in as the demo user ({DEMO_USERNAME}); the password comes from stdin, never argv")
            failures += run([CLI, "auth", "login", "--username", DEMO_USERNAME, "--password-stdin"], env,
                            stdin=DEMO_PASSWORD + "\n",
                            shown=f"echo '********' | kitty-auth auth login --username {DEMO_USERNAME} --password-stdin") != 0
            cred = home / "credentials"
            print(f"  stored {cred} with mode {oct(cred.stat().st_mode & 0o777)} (tokens only, no password)")

            step("Status, offline: who, where, and when the tokens expire")
            failures += run([CLI, "auth", "status"], env) != 0
            failures += run([CLI, "auth", "status", "--json"], env) != 0

            step("Obtain a short-lived WebSocket token, as live sync does (library: AuthClient)")
            failures += run([sys.executable, "-c", WS_DEMO], env, shown="python -c '<AuthClient().obtain_ws_token(); WebSocketClient>'") != 0

            failures += accounts_token_and_doctor(server, env)

            step("Log out of every session: each is removed here and revoked at its server")
            failures += run([CLI, "auth", "logout", "--all"], env) != 0
            failures += run([CLI, "auth", "status"], env) != 1

            failures += device_login_and_revoke(server, env)
            stats = server.stats()["requests"]
            print(f"\n  requests the server saw: {dict(sorted(stats.items()))}")
            step("Stopping the reference server")
        print("  stopped; nothing left running.")
    print("\nDemo " + ("finished: every step behaved as expected." if not failures else f"had {failures} unexpected result(s)."))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
