"""Child processes never outlive their parent: a parent-death signal where it is safe, and a heartbeat everywhere.

A parent that starts a cxrlt child (the demo build's training processes, the dashboard's training runs and demo
build) hands it its identity, ``pid:start-time``, in the environment variable ``CXRLT_PARENT`` (:func:`child_env`)
or as an argument. The child then

- asks Linux to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)`` through ctypes), when the parent
  says so: the signal follows the parent *thread* that started the child, so it is only asked for by parents that
  start children from their main thread;
- runs a heartbeat thread that checks every second that the parent still exists (same pid *and* start time, so a
  recycled pid does not count); when it is gone the child sends itself SIGTERM (the training loop stops at the next
  step and saves a resumable state) and exits hard after a grace period if it has not ended by then.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

PARENT_ENV = "CXRLT_PARENT"
PR_SET_PDEATHSIG = 1
GRACE_S = 30.0


def start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22); ``None`` if
    the process does not exist or the system has no ``/proc``."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, the state, is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()


def identity(pid: int | None = None) -> str:
    """``"pid:start-ticks"`` of ``pid`` (default this process): names one process even if pids are recycled."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_ticks(pid) or 0}"


def alive(ident: str) -> bool:
    """Whether the process named by :func:`identity` still runs (and is not a zombie)."""
    try:
        pid_text, ticks_text = ident.split(":", 1)
        pid, ticks = int(pid_text), int(ticks_text)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = start_ticks(pid)
    if now is None:
        return sys.platform != "linux"  # no /proc to tell: trust kill(0)
    if ticks and now != ticks:
        return False  # the pid was recycled by another process
    try:
        state = _stat_fields(pid)[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default this process's environment) with ``CXRLT_PARENT`` naming this process."""
    return {**(os.environ if env is None else env), PARENT_ENV: identity()}


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent thread ends; ``False`` where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def bind_to_parent(parent: str | None, death_signal: bool = False, interval_s: float = 1.0) -> bool:
    """Make this process end when ``parent`` (an :func:`identity`) ends; returns whether a parent was bound.

    Args:
        parent: the parent's identity (``None``: nothing to do).
        death_signal: also set ``PR_SET_PDEATHSIG`` (only when the parent started us from its main thread).
        interval_s: heartbeat period.
    """
    if not parent:
        return False
    if death_signal:
        set_parent_death_signal(signal.SIGTERM)
    if not alive(parent):  # it died before we got here
        _leave(parent)
    thread = threading.Thread(target=_watch, args=(parent, interval_s), name="cxrlt-parent-heartbeat", daemon=True)
    thread.start()
    return True


def bind_from_env(env: Mapping[str, str] | None = None) -> bool:
    """:func:`bind_to_parent` with the identity in ``CXRLT_PARENT`` (heartbeat only), if any."""
    return bind_to_parent((os.environ if env is None else env).get(PARENT_ENV))


def _watch(parent: str, interval_s: float) -> None:
    while alive(parent):
        time.sleep(interval_s)
    _leave(parent)


def _leave(parent: str) -> None:
    """The parent is gone: stop like a ``kill`` would (SIGTERM: resumable), then for sure after a grace period."""
    print(f"cxrlt: parent process {parent.split(':')[0]} is gone; stopping", file=sys.stderr, flush=True)
    timer = threading.Timer(GRACE_S, os._exit, args=(143,))
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)
