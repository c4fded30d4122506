"""Start the dashboard as a headless server on a free local port (for the browser test and the start-up benchmark)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
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
