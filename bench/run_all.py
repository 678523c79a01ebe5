"""Run every bench script in bench/ (what `make bench` does) and say which ones failed.

    .venv/bin/python bench/run_all.py [NAME ...]     # e.g. run_all.py startup get_access_token

Every ``bench/*.py`` is a bench script except this file, ``hello_click.py`` (the yardstick that
startup.py runs) and helpers whose names start with ``_``. Each runs in its own interpreter (the
one running this script, i.e. .venv/bin/python), one after the other, with its output as it
comes. The machine is shared with whatever else runs: every script reports medians.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NOT_BENCHES = {"run_all.py", "hello_click.py", "chaos.py"}  # chaos: `make chaos`, minutes long


def scripts() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if p.name not in NOT_BENCHES and not p.name.startswith("_"))


def main(argv: list[str]) -> int:
    chosen = scripts()
    if argv:
        wanted = {name.removesuffix(".py") for name in argv}
        unknown = wanted - {p.stem for p in chosen}
        if unknown:
            print(f"unknown bench script(s): {', '.join(sorted(unknown))}; "
                  f"available: {', '.join(p.stem for p in chosen)}", file=sys.stderr)
            return 2
        chosen = [p for p in chosen if p.stem in wanted]
    results: list[tuple[str, int, float]] = []
    for script in chosen:
        command = [sys.executable, str(script.relative_to(ROOT))]
        print(f"\n$ {' '.join(command)}", flush=True)
        start = time.monotonic()
        code = subprocess.call(command, cwd=ROOT)
        results.append((script.name, code, time.monotonic() - start))
    print("\nbench summary:")
    for name, code, seconds in results:
        print(f"  {name:<32} {'ok' if code == 0 else f'FAILED (exit {code})':<16} {seconds:6.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
