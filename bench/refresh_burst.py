"""Refresh burst: N processes find the access token expired at the same moment.

    .venv/bin/python bench/refresh_burst.py [--sizes 1 4 16 32] [--rounds 3]

Starts its own reference server (loopback, TLS). Per round and size: a fresh spec-kitty home,
a real login (the CLI), then the stored ``access_expires_at`` is moved into the past (the token's
lifetime claims are untouched, so the policy sees an expired 15-minute token). N workers (the
installed library in `python -c`) import everything, signal ready and wait on a go-file; the
bench creates it and times until the last worker has exited. Each worker calls
``AuthClient().get_access_token()`` once and prints a SHA-256 of the token (never the token).

Columns: refresh requests the server saw (single-flight: 1 per round), failures (non-zero exit,
or a token other than the one finally stored), and wall time from the go signal to the last
exit (median and max over the rounds; includes filelock's 50 ms polling of waiters and the
workers' interpreter exit), and the slowest in-process get_access_token() call of a round
(median over the rounds). Workers
log at WARNING, so the burst does not time DEBUG log writing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import BIN, PYTHON, TESTS, clean_env, header, median, this_command  # noqa: E402

sys.path.insert(0, str(TESTS))
from refserver import REFRESH_PATH  # noqa: E402
from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer  # noqa: E402

WORKER = r"""
import hashlib, json, sys, time
from pathlib import Path
import kitty_auth
import filelock, httpx, tomlkit, truststore  # warm: time the refresh, not the imports

ready, go = Path(sys.argv[1]), Path(sys.argv[2])
client = kitty_auth.AuthClient()
ready.touch()
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit(5)
    time.sleep(0.005)
started = time.monotonic()
try:
    token = client.get_access_token()
except kitty_auth.AuthError as exc:
    print(json.dumps({"error": type(exc).__name__}))
    sys.exit(1)
finally:
    client.close()
print(json.dumps({"sha256": hashlib.sha256(token.encode()).hexdigest(), "seconds": time.monotonic() - started}))
"""

STEP_LIMIT = 120.0  # seconds: hang guard for any one wait


def login(home: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([str(BIN / "kitty-auth"), "auth", "login", "-u", DEMO_USERNAME, "--password-stdin"],
                          input=DEMO_PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"login failed: {proc.stderr.strip()}")


def expire_access_token(credentials: Path) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = re.sub(r'access_expires_at = "[^"]*"', f'access_expires_at = "{past}"', credentials.read_text())
    credentials.write_text(text)  # in place: the file stays 0600


def one_burst(server: RefServer, workdir: Path, n: int) -> dict[str, float | int]:
    home = workdir / "home"
    env = clean_env(SPEC_KITTY_HOME=str(home), SPEC_KITTY_SAAS_URL=server.url, SSL_CERT_FILE=str(server.ca_path),
                    SPEC_KITTY_LOG_LEVEL="WARNING")
    login(home, env)
    expire_access_token(home / "credentials")
    barrier = workdir / "barrier"
    barrier.mkdir()
    go = barrier / "go"
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in range(n):
            procs.append(subprocess.Popen([str(PYTHON), "-c", WORKER, str(barrier / f"ready-{i}"), str(go)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, env=env, text=True))
        deadline = time.monotonic() + STEP_LIMIT
        while not all((barrier / f"ready-{i}").exists() or p.poll() is not None for i, p in enumerate(procs)):
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start in time")
            time.sleep(0.01)
        server.reset_stats()
        started = time.monotonic()
        go.touch()
        outputs = [p.communicate(timeout=STEP_LIMIT)[0] for p in procs]  # output is one short line
        wall = time.monotonic() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    stored = re.search(r'^access = "([^"]*)"', (home / "credentials").read_text(), re.M)
    expected = hashlib.sha256(stored.group(1).encode()).hexdigest() if stored else None
    failures, calls = 0, []
    for p, out in zip(procs, outputs, strict=True):
        try:
            result = json.loads(out)
            ok = p.returncode == 0 and result["sha256"] == expected
            calls.append(result["seconds"])
        except (ValueError, KeyError):
            ok = False
        failures += not ok
    return {"refreshes": server.stats()["requests"].get(REFRESH_PATH, 0), "failures": failures, "wall": wall,
            "slowest_call": max(calls, default=float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    header("refresh burst: N processes with an expired access token", this_command())
    print(f"   rounds per size: {args.rounds}; every worker calls get_access_token() once\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="refresh-burst-") as tmp, RefServer(Path(tmp) / "server") as server:
        for n in args.sizes:
            results = [one_burst(server, Path(tmp) / f"n{n}-r{r}", n) for r in range(args.rounds)]
            rows.append((n, [r["refreshes"] for r in results], sum(r["failures"] for r in results),
                         median(r["wall"] for r in results), max(r["wall"] for r in results),
                         median(r["slowest_call"] for r in results)))
    print(f"| {'N':>3} | refresh requests per round | failures | wall median | wall max | slowest call (median) |")
    print(f"|{'-' * 5}|{'-' * 28}|{'-' * 10}|{'-' * 13}|{'-' * 10}|{'-' * 23}|")
    for n, refreshes, failures, med, worst, slowest in rows:
        print(f"| {n:>3} | {' '.join(map(str, refreshes)):<26} | {failures:>8} | {med * 1000:>8.0f} ms | "
              f"{worst * 1000:>5.0f} ms | {slowest * 1000:>18.0f} ms |")
    bad = [n for n, refreshes, failures, *_ in rows if failures or any(r != 1 for r in refreshes)]
    if bad:
        raise SystemExit(f"single-flight violated for N = {bad}")


if __name__ == "__main__":
    main()
