"""DNS rebinding: a real ``streamlit run app.py`` refuses a WebSocket whose Host (and Origin) is a foreign name.

A page on ``evil.example`` whose name an attacker re-points at 127.0.0.1 makes the browser connect to the local
dashboard with ``Host: evil.example`` and ``Origin: http://evil.example``: same-origin to Streamlit unless
``server.allowedHosts`` (set in ``.streamlit/config.toml``) names the hosts it serves.
"""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from cxrlt_dashboard.server import free_port, start_dashboard

pytestmark = pytest.mark.slow


def _handshake(port: int, host: str, origin: str | None) -> str:
    """Open a WebSocket to the dashboard's stream with the given Host/Origin; returns the HTTP status line."""
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n", 1)[0].decode(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    process = start_dashboard(tmp_path_factory.mktemp("ws") / "demo", port)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, "the dashboard server exited"
            assert time.monotonic() < deadline, "the dashboard server did not start"
            time.sleep(0.5)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except Exception:
            process.kill()
            process.wait()


def test_local_names_are_accepted(server: int):
    for name in ("localhost", "127.0.0.1"):
        status = _handshake(server, f"{name}:{server}", f"http://{name}:{server}")
        assert " 101 " in status, (name, status)


@pytest.mark.parametrize("origin", [True, False])
def test_a_foreign_host_is_refused(server: int, origin: bool):
    status = _handshake(server, f"evil.example:{server}", f"http://evil.example:{server}" if origin else None)
    assert " 101 " not in status and " 403 " in status, status
