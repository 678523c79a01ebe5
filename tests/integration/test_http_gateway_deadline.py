"""The gateway's total deadline bounds the whole request, headers included.

A server that trickles response *header* bytes, each within the read timeout, would otherwise
keep a refresh (and so the credentials lock) busy for as long as it likes: httpx's read timeout
is per socket read. The upper bound asserted is generous (a hang check, not a speed check).
"""
import socket
import ssl
import threading
import time

import httpx
import pytest
import trustme

from kitty_auth.adapters.http_gateway import HttpxTokenGateway
from kitty_auth.domain.errors import NetworkError


def trickling_server(ca, seconds: float, step: float):
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve():
        conn, _ = sock.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(step)
                try:
                    tls.sendall(b"a")
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def test_total_deadline_bounds_a_trickled_header(tmp_path, monkeypatch):
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    port = trickling_server(ca, seconds=30.0, step=0.3)
    gw = HttpxTokenGateway(timeout=httpx.Timeout(1.0), total_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(NetworkError):
        gw.refresh(f"https://127.0.0.1:{port}", "x.y.z")
    elapsed = time.monotonic() - started
    gw.close()
    assert elapsed < 10.0, f"refresh took {elapsed:.1f} s despite total_timeout=2 s (server trickles for 30 s)"
