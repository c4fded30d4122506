"""Start the dashboard as a headless server on a free local port (for the browser test and the start-up benchmark)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
