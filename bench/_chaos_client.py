"""One library client of the chaos run (bench/chaos.py starts many; not a bench itself).

    python bench/_chaos_client.py SEED UNTIL URL

A stand-in for a spec-kitty process: until the epoch second UNTIL, it repeats at random
``AuthClient().get_access_token()``, ``obtain_ws_token()`` and Bearer requests through
``httpx.Client(auth=kitty_auth.BearerAuth())`` to the server at URL, with a short pause between
them, on the spec-kitty home of its environment. It prints one JSON line at the end: how many
calls ended how (error class names; never a token). A KeyboardInterrupt (Ctrl-C, and SIGTERM,
which this host turns into one as a host that wants a clean SIGTERM does: the library installs no
handler) ends the loop with exit status 130 after that line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable

import httpx

import kitty_auth

BEARER_PATHS = ("/api/v1/me", "/api/v1/sync/health/")
PAUSE = (0.15, 0.5)  # seconds between calls


def main(seed: int, until: float, url: str) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    code = 0
    client = kitty_auth.AuthClient()
    http = httpx.Client(auth=kitty_auth.BearerAuth(), base_url=url, timeout=10, trust_env=False,
                        verify=ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"]))
    calls: dict[str, Callable[[], object]] = {
        "get_access_token": client.get_access_token,
        "obtain_ws_token": client.obtain_ws_token,
        "bearer": lambda: http.get(rng.choice(BEARER_PATHS)).raise_for_status(),
    }
    try:
        while time.time() < until:
            name = rng.choice(list(calls))
            try:
                calls[name]()
                outcomes[f"{name} ok"] += 1
            except (kitty_auth.AuthError, httpx.HTTPError) as exc:
                outcomes[f"{name} {type(exc).__name__}"] += 1
            time.sleep(rng.uniform(*PAUSE))
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):  # one interrupt is enough: finish cleanly
            signal.signal(signum, signal.SIG_IGN)
        outcomes["interrupted"] += 1
        code = 130
    finally:
        print(json.dumps({"pid": os.getpid(), "outcomes": outcomes}), flush=True)
    http.close()
    client.close()
    return code


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
