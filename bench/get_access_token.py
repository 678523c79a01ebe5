"""In-process cost of `AuthClient.get_access_token()` on a fresh access token (the host's hot path).

    .venv/bin/python bench/get_access_token.py [--batches 20] [--calls 100]

A fresh token means: no request, no lock, no import. Each call still re-reads the credentials
file (another process may have refreshed it): lstat + open + read + tomllib parse + the expiry
decision. Reported: the median per-call time over ``--batches`` batches of ``--calls`` calls
(timeit style), the first call of the process, and the parts (load alone) for scale. The script
also checks that the calls took no lock, opened no connection and imported no module.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import header, median, quartiles, this_command, write_logged_in_home  # noqa: E402


def per_call_us(fn: Callable[[], object], batches: int, calls: int) -> list[float]:
    results = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter() - start) / calls * 1e6)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    header("get_access_token() on a fresh token, in process", this_command())

    with tempfile.TemporaryDirectory(prefix="kitty-bench-") as tmp:
        home = Path(tmp) / "home"
        write_logged_in_home(home)  # server https://127.0.0.1:9: nothing listens; no request may be sent

        import kitty_auth

        client = kitty_auth.AuthClient(home=home)
        repo = client._container.repository()
        locks = 0
        real_lock = repo.lock

        @contextlib.contextmanager
        def counting_lock() -> Iterator[None]:
            nonlocal locks
            locks += 1
            with real_lock():
                yield

        repo.lock = counting_lock  # type: ignore[method-assign]

        before = set(sys.modules)
        start = time.perf_counter()
        token = client.get_access_token()
        first_us = (time.perf_counter() - start) * 1e6
        imported = sorted(set(sys.modules) - before)

        samples = per_call_us(client.get_access_token, args.batches, args.calls)
        load = per_call_us(repo.load, args.batches, args.calls)
        assert client.get_access_token() == token

    q1, q3 = quartiles(samples)
    print(f"   {args.batches} batches x {args.calls} calls; per-call time of each batch, median (q1-q3):")
    print(f"   get_access_token()            {median(samples):7.1f} us  ({q1:.1f}-{q3:.1f})")
    print(f"     of which repository.load()  {median(load):7.1f} us  (lstat, open, read, tomllib parse)")
    print(f"   first call in the process     {first_us:7.1f} us")
    shown = ", ".join(imported[:6]) + (f", ... ({len(imported)} in all)" if len(imported) > 6 else "")
    print(f"   locks taken: {locks}; modules imported by the calls: {shown or 'none'}; "
          f"httpx imported: {'httpx' in sys.modules}")
    ok = median(samples) < 1000 and locks == 0 and "httpx" not in sys.modules
    print(f"   RESULT get_access_token (fresh) median = {median(samples):.1f} us; target < 1000 us, "
          f"no lock, no network import: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
