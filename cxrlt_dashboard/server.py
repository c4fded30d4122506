"""Start the dashboard as a headless server on a free local port (for the browser test and the start-up benchmark)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from cxrlt_core.paths import REPO_ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dashboard(
    workspace: str | os.PathLike[str], port: int, log: IO[bytes] | int = subprocess.DEVNULL
) -> subprocess.Popen:
    """``streamlit run app.py`` headless on ``port`` with ``CXRLT_WORKSPACE=workspace``; output to ``log``."""
    env = {**os.environ, "CXRLT_WORKSPACE": str(Path(workspace).resolve())}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until_healthy(url: str, timeout_s: float = 60.0) -> bool:
    """Poll ``url``'s ``/_stcore/health`` until it answers ``ok`` (``True``) or ``timeout_s`` passes (``False``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


@contextmanager
def serving(workspace: str | os.PathLike[str], log_path: str | os.PathLike[str]) -> Iterator[str]:
    """A started, healthy dashboard on a free port for the ``with`` block: yields its URL, stops it afterwards.

    Raises:
        RuntimeError: the server did not answer within a minute; the message ends with the log's last lines.
    """
    port = free_port()
    with open(log_path, "w+b") as log:
        process = start_dashboard(workspace, port, log)
        try:
            url = f"http://127.0.0.1:{port}"
            if not wait_until_healthy(url):
                log.seek(0)
                raise RuntimeError("streamlit did not start: " + log.read().decode(errors="replace")[-2000:])
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
