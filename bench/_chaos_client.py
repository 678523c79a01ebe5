"""One library client of the chaos run (bench/chaos.py starts many; not a bench itself).

    python bench/_chaos_client.py SEED UNTIL URL

A stand-in for a spec-kitty process: until the epoch second UNTIL, it repeats at random
``AuthClient().get_access_token()``, ``obtain_ws_token()`` and Bearer requests through
``httpx.Client(auth=kitty_auth.BearerAuth())`` to the server at URL, with a short pause between
them, on the spec-kitty home of its environment. It prints one JSON line at the end: how many
calls ended how (error class names; never a token). A KeyboardInterrupt (Ctrl-C, and SIGTERM,
which this host turns into one as a host that wants a clean SIGTERM does: the library installs no
handler) ends it with exit status 130 after that line, wherever it lands (imports included), so
a traceback in its output is never its own.
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGTERM, signal.default_int_handler)  # before anything slow

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

BEARER_PATHS = ("/api/v1/me", "/api/v1/sync/health/")
PAUSE = (0.15, 0.5)  # seconds between calls


def calls(rng: random.Random, until: float, url: str, outcomes: Counter[str]) -> None:
    import ssl

    import httpx

    import kitty_auth

    with kitty_auth.AuthClient() as client, httpx.Client(
        auth=kitty_auth.BearerAuth(), base_url=url, timeout=10, trust_env=False,
        verify=ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"]),
    ) as http:
        choices = {
            "get_access_token": client.get_access_token,
            "obtain_ws_token": client.obtain_ws_token,
            "bearer": lambda: http.get(rng.choice(BEARER_PATHS)).raise_for_status(),
        }
        while time.time() < until:
            name = rng.choice(list(choices))
            try:
                choices[name]()
                outcomes[f"{name} ok"] += 1
            except (kitty_auth.AuthError, httpx.HTTPError) as exc:
                outcomes[f"{name} {type(exc).__name__}"] += 1
            time.sleep(rng.uniform(*PAUSE))


def main(seed: int, until: float, url: str) -> int:
    outcomes: Counter[str] = Counter()
    code = 0
    try:
        calls(random.Random(seed), until, url, outcomes)
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):  # one interrupt is enough: finish cleanly
            signal.signal(signum, signal.SIG_IGN)
        outcomes["interrupted"] += 1
        code = 130
    print(json.dumps({"pid": os.getpid(), "outcomes": outcomes}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
