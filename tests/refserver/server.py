"""Entry point of the reference server: `python tests/refserver/server.py --state-dir DIR [--port N] ...`.

Serves Django (DRF + simplejwt, and OAuth 2.0 through django-oauth-toolkit) plus the events WebSocket and the
/_control/ API over TLS on 127.0.0.1 with uvicorn, using a fresh trustme CA whose certificate is written to
DIR/ca.pem. Once listening it writes DIR/ready.json ({"url", "ca", "control_secret", "pid"}) and prints
"refserver ready on URL" followed by the CA path, the demo user and how to point the CLI at it.
SIGTERM or SIGINT shuts it down cleanly (exit status 0). `--keep-state` starts it again on what a previous run left in
DIR (database, CA, signing key, token journal): a restart that every issued token survives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # makes the `refserver` package importable

from refserver import (  # noqa: E402
    CONTROL_PREFIX,
    CONTROL_SECRET_HEADER,
    DEFAULT_ACCESS_LIFETIME,
    DEFAULT_PING_INTERVAL,
    DEFAULT_REFRESH_LIFETIME,
    DEFAULT_WS_TOKEN_LIFETIME,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    LOGIN_PATH,
    OAUTH_CLIENT_ID,
    OAUTH_METADATA_PATH,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="where the database, certificates and ready.json go")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--access-lifetime", type=float, default=DEFAULT_ACCESS_LIFETIME, help="seconds")
    parser.add_argument("--refresh-lifetime", type=float, default=DEFAULT_REFRESH_LIFETIME, help="seconds")
    parser.add_argument("--ping-interval", type=float, default=DEFAULT_PING_INTERVAL, help="seconds between WebSocket pings")
    parser.add_argument("--keep-state", action="store_true",
                        help="a restart: keep the database, CA, certificate, signing key and token journal of the last run "
                             "in --state-dir, so the tokens it issued stay valid and clients keep trusting it")
    parser.add_argument("--set-options", type=json.loads, default={}, metavar="JSON",
                        help="run-time options (refserver.options) in force from the first request on; reset() "
                             "still restores the defaults")
    parser.add_argument("--set-lifetimes", type=json.loads, default={}, metavar="JSON",
                        help='{"access", "refresh", "ws"} seconds in force from the first request on; reset() still '
                             "restores the start-up lifetimes")
    return parser.parse_args(argv)


def write_tls_files(state_dir: Path, *, keep: bool = False) -> tuple[Path, Path]:
    """A new CA and a server certificate for 127.0.0.1 and localhost (`keep`: those already there, if both are);
    returns (ca.pem, server.pem with key)."""
    import trustme

    ca_path, server_path = state_dir / "ca.pem", state_dir / "server.pem"
    if keep and ca_path.is_file() and server_path.is_file():
        return ca_path, server_path
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(ca_path))
    server_path.touch(mode=0o600)
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(server_path))
    return ca_path, server_path


def signing_key(state_dir: Path, *, keep: bool = False) -> str:
    """Django's SECRET_KEY (simplejwt signs with it): the one in `state_dir`/secret-key when `keep`, else a new one,
    written there 0600 for the next restart."""
    path = state_dir / "secret-key"
    if keep and path.is_file():
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key)
    return key


def bind_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(False)
    return sock


def write_json_atomically(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def ready_banner(ready: dict, ready_path: Path) -> str:
    """What someone who started the server by hand needs: where it is, what to trust, who to log in as, and how to
    point the CLI (kitty-auth, or the spec-kitty host) at it."""
    url, ca = ready["url"], ready["ca"]
    return "\n".join([
        f"refserver ready on {url}",
        f"  CA certificate:  {ca}",
        f"  demo user:       {DEMO_USERNAME}  password: {DEMO_PASSWORD}",
        f"  OAuth:           client_id {OAUTH_CLIENT_ID}; metadata {url}{OAUTH_METADATA_PATH}; sign-in page {url}{LOGIN_PATH}",
        f"  control API:     {url}{CONTROL_PREFIX}... with header {CONTROL_SECRET_HEADER} from {ready_path}",
        "  point the CLI at it:",
        f"    export SSL_CERT_FILE={ca} SPEC_KITTY_SAAS_URL={url}",
        f"    kitty-auth auth login -u {DEMO_USERNAME}          # or: python -m kitty_auth auth login ...",
        "  the spec-kitty 2.x host reads its URL from config.toml only, and its batch sync trusts REQUESTS_CA_BUNDLE:",
        f"    export SPEC_KITTY_ENABLE_SAAS_SYNC=1 SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca}",
        f"    spec-kitty sync server {url} && spec-kitty auth login -u {DEMO_USERNAME}",
        "  stop with Ctrl-C",
    ])  # fmt: skip


async def serve(server, app, sock: socket.socket, ready: dict, ready_path: Path) -> None:
    """Run uvicorn; announce readiness once it listens; cut the app's fault delays short once it is stopping."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise SystemExit("refserver: uvicorn stopped before it was listening")
        await asyncio.sleep(0.02)
    write_json_atomically(ready_path, ready)
    print(ready_banner(ready, ready_path), flush=True)
    while not server.should_exit and not task.done():
        await asyncio.wait([task], timeout=0.05)
    app.begin_shutdown()
    await task


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    state_dir = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    ready_path = state_dir / "ready.json"
    ready_path.unlink(missing_ok=True)

    from refserver import issued
    from refserver.config import configure_django

    keep = args.keep_state
    configure_django(state_dir, args.access_lifetime, args.refresh_lifetime, keep_database=keep,
                     secret_key=signing_key(state_dir, keep=keep))
    issued.open_journal(state_dir, keep=keep)

    import uvicorn
    from django.core.asgi import get_asgi_application

    from refserver.asgi import RefServerApp

    control_secret = secrets.token_urlsafe(32)
    default_lifetimes = {"access": args.access_lifetime, "refresh": args.refresh_lifetime, "ws": DEFAULT_WS_TOKEN_LIFETIME}
    app = RefServerApp(get_asgi_application(), control_secret, args.ping_interval, default_lifetimes)
    from refserver import api, options

    options.current.update(args.set_options)
    api.set_lifetimes(**args.set_lifetimes)
    ca_path, server_pem = write_tls_files(state_dir, keep=keep)
    sock = bind_socket(args.port)
    # The Windows lane names it "localhost" (Wine's certificate policy does not match IP addresses).
    host = "localhost" if os.environ.get("REFSERVER_URL_HOST") == "localhost" else "127.0.0.1"
    url = f"https://{host}:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app,
        http="h11",  # the "close" fault reaches the transport through h11's request cycle
        ws="websockets-sansio",  # supports the WebSocket denial response (HTTP 401 on the handshake)
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # scope["client"] is the real peer, so connections are counted honestly
        ssl_certfile=str(server_pem),
        ssl_keyfile=str(server_pem),
        timeout_graceful_shutdown=2,
        date_header=False,  # the app sends its own (`date_offset` fakes a server clock that is off)
    )
    server = uvicorn.Server(config)

    # uvicorn handles SIGINT/SIGTERM while serving and re-raises the signal once shut down; these handlers
    # make that re-raise a no-op (clean exit 0) and make an early signal, before uvicorn serves, exit at once.
    def on_signal(signum: int, _frame) -> None:
        if not server.started:
            raise SystemExit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    ready = {"url": url, "ca": str(ca_path), "control_secret": control_secret, "pid": os.getpid()}
    try:
        asyncio.run(serve(server, app, sock, ready, ready_path))
    finally:
        ready_path.unlink(missing_ok=True)
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
