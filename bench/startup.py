"""Start-up: `kitty-auth auth status` and `kitty-auth auth token` (logged in, fresh token, offline) against a Click hello-world.

    .venv/bin/python bench/startup.py [--runs 31]

Every command below runs once per round, in a rotating order (so slow moments of a shared
machine hit them all alike), for ``--runs`` rounds after ``--warmup`` untimed rounds; the
figures are medians of wall time, measured around ``subprocess.run`` (fork/exec included).

The pairings that decide the targets (status <= 3.2x; token <= 2.5x and no slower than status) are

    .venv/bin/kitty-auth auth status      vs   .venv/bin/python bench/hello_click.py
    .venv/bin/kitty-auth auth token       vs   .venv/bin/python bench/hello_click.py

and they are fair: each is the venv interpreter running one small Python file that imports Click.
The console script is a pip-generated file whose shebang is the venv python; it imports `re`
and `sys` (Click imports both anyway) and calls `kitty_auth.console:main`. Compared with
the python-file form it only adds the kernel's shebang exec, which is well under a millisecond.
`python -m kitty_auth` is shown too (it adds runpy's imports, a few ms). The rows below the
targets put the figures in scale: the bare interpreter, and importing what the design needs on
these paths (click and tomllib: the offline commands build their parts without dependency-injector,
see kitty_auth/container/offline.py). `auth token` prints the token to a pipe, read and dropped.

Bytecode: a pip install compiles every module once, so by default the children may cache
bytecode (in a throw-away PYTHONPYCACHEPREFIX, so nothing is written into the repository, and
even when the caller's environment sets PYTHONDONTWRITEBYTECODE). ``--no-bytecode-cache``
measures the other case, where an editable install's sources are compiled on every run.
Also printed: the children's CPU time (user + system), less sensitive than wall time to other
processes competing for a core.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import BENCH, BIN, PYTHON, clean_env, header, median, quartiles, quote, this_command, write_logged_in_home  # noqa: E402

HELLO = [str(PYTHON), str(BENCH / "hello_click.py")]
STATUS = [str(BIN / "kitty-auth"), "auth", "status"]
STATUS_M = [str(PYTHON), "-m", "kitty_auth", "auth", "status"]
TOKEN = [str(BIN / "kitty-auth"), "auth", "token"]
BARE = [str(PYTHON), "-c", "pass"]
FLOOR = [str(PYTHON), "-c", "import click, tomllib"]
WIDTH = 76


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str], expect: int | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) for one run of ``argv``."""
    cpu0 = _cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu0
    if expect is not None and proc.returncode != expect:
        raise SystemExit(f"{quote(argv)} exited {proc.returncode} (expected {expect}):\n{proc.stderr.decode()}")
    return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31, help="timed rounds (default 31)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="run the children with PYTHONDONTWRITEBYTECODE=1 and no cache prefix: kitty_auth's "
                             "sources (an editable install) are then compiled on every run")
    args = parser.parse_args()

    header("start-up: `kitty-auth auth status` and `auth token` vs a Click hello-world", this_command())
    with tempfile.TemporaryDirectory(prefix="kitty-bench-") as tmp:
        home = Path(tmp) / "home"
        write_logged_in_home(home)
        # Cached bytecode, as after any pip install: if the caller's environment forbids writing
        # it (PYTHONDONTWRITEBYTECODE), the children keep theirs in a throw-away prefix instead of
        # recompiling kitty_auth's sources on every run.
        if args.no_bytecode_cache:
            env = clean_env(SPEC_KITTY_HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
            env.pop("PYTHONPYCACHEPREFIX", None)
        else:
            env = clean_env(SPEC_KITTY_HOME=str(home), PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands: list[tuple[str, list[str], int | None]] = [
            ("hello", HELLO, 0),
            ("status", STATUS, 0),
            ("status -m", STATUS_M, 0),
            ("token", TOKEN, 0),
            ("bare", BARE, 0),
            ("floor", FLOOR, 0),
        ]
        gh = shutil.which("gh")
        if gh:
            commands.append(("gh", [gh, "auth", "status"], None))  # its exit code depends on gh's own login
        wall: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        cpu: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        for round_no in range(args.warmup + args.runs):
            k = round_no % len(commands)
            for name, argv, expect in commands[k:] + commands[:k]:  # rotate the order every round
                elapsed, used = run_once(argv, env, expect)
                if round_no >= args.warmup:
                    wall[name].append(elapsed)
                    cpu[name].append(used)

    hello, hello_cpu = median(wall["hello"]), median(cpu["hello"])
    print(f"   {args.runs} timed rounds after {args.warmup} warm-up rounds, commands interleaved in rotating order;")
    cache = "NOT cached (PYTHONDONTWRITEBYTECODE=1)" if args.no_bytecode_cache else "cached"
    print(f"   SPEC_KITTY_HOME=<temporary home holding a fresh credentials file>; bytecode {cache}")
    print(f"   {'command':<{WIDTH}} {'wall ms':>8} {'q1-q3':>11} {'x hello':>7} {'cpu ms':>7} {'x hello':>7}")
    labels = {
        "hello": quote(HELLO),
        "status": quote(STATUS),
        "status -m": quote(STATUS_M),
        "token": quote(TOKEN),
        "bare": quote(BARE) + "   (the interpreter alone)",
        "floor": "python -c 'import click, tomllib'",
        "gh": "gh auth status",
    }
    for name, _, _ in commands:
        q1, q3 = quartiles(wall[name])
        w, c = median(wall[name]), median(cpu[name])
        print(f"   {labels[name]:<{WIDTH}} {w * 1e3:8.1f} {q1 * 1e3:5.0f}-{q3 * 1e3:<5.0f} {w / hello:6.2f}x "
              f"{c * 1e3:7.1f} {c / hello_cpu:6.2f}x")
    for name, target in (("status", 3.2), ("token", 2.5)):
        ratio = median(wall[name]) / hello
        paired = median(c / h for c, h in zip(wall[name], wall["hello"], strict=True))
        print(f"   RESULT {name}/hello wall-time ratio = {ratio:.2f}x (median of the per-round ratios: {paired:.2f}x; "
              f"CPU-time ratio {median(cpu[name]) / hello_cpu:.2f}x); target <= {target}x: "
              f"{'met' if ratio <= target else 'NOT met'}")
    versus = median(t / s for t, s in zip(wall["token"], wall["status"], strict=True))
    print(f"   RESULT token/status: median of the per-round ratios {versus:.2f}x, CPU-time ratio "
          f"{median(cpu['token']) / median(cpu['status']):.2f}x; target <= 1: {'met' if versus <= 1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
