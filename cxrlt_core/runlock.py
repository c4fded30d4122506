"""One writer per run folder: a lock file that names its holder (pid, host, start time, what it does).

``cxrlt train`` (every entry: terminal, dashboard, demo build) holds ``<run>/LOCK`` while it trains the run, and the
demo build holds ``<workspace>/.build/LOCK`` while it builds; a second writer is refused with one line naming the
holder.

The holder keeps an exclusive ``flock`` on the lock file for as long as it lives; the kernel drops it when the
process ends in any way (``kill -9`` included), so a lock file whose flock can be taken is stale: its holder is gone.
The file's content (pid, host, start time, command) is only there to name the holder in messages. Where the file
system cannot lock, the holder's pid and start time on this host decide.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from cxrlt_core.errors import InputError
from cxrlt_core.lifeline import alive, identity

LOCK_FILE = "LOCK"


class LockedError(InputError):
    """The folder is held by another live writer."""

    def __init__(self, message: str, holder: dict[str, Any]):
        super().__init__(message)
        self.holder = holder


def read_lock(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The lock's holder record, or ``None`` when there is no (readable) lock."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def live_holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The live holder of ``folder``'s lock, or ``None`` when it is free or stale (its holder is gone)."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_lock(folder) or {"what": "a writer"}
        # a killed holder's forked loader workers keep its lock for the seconds they take to notice: not a writer
        return None if _holder_dead_here(holder) else holder
    except OSError:  # no locking on this file system: judge by the pid
        holder = read_lock(folder)
        return holder if holder and _pid_holder_alive(holder) else None
    finally:
        os.close(fd)
    return None


def _holder_dead_here(holder: dict[str, Any]) -> bool:
    """The recorded holder ran on this host and is gone (its lock may still be held by its forked children)."""
    return holder.get("host") == socket.gethostname() and "identity" in holder and not alive(str(holder["identity"]))


def _pid_holder_alive(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell from here: assume it lives
    return alive(str(holder.get("identity") or f"{holder.get('pid', 0)}:0"))


def describe_holder(holder: dict[str, Any]) -> str:
    """``"training by pid 123 on host h since 2026-01-01T10:00:00"``."""
    since = _dt.datetime.fromtimestamp(float(holder.get("started", 0))).isoformat(timespec="seconds")
    return f"{holder.get('what', 'a writer')} by pid {holder.get('pid')} on host {holder.get('host')} since {since}"


ORPHAN_WAIT_S = 20.0
"""How long to wait for the forked children of a dead holder (DataLoader workers notice within ~5 s) to let go."""


def _flock_briefly(fd: int, folder: Path, tries: int = 10, pause_s: float = 0.05) -> None:
    """An exclusive flock, retried for half a second (a reader's brief shared lock, :func:`live_holder`, is not a
    holder), and for up to :data:`ORPHAN_WAIT_S` while the recorded holder is dead but its children still hold it."""
    deadline = time.monotonic() + ORPHAN_WAIT_S
    attempt = 0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            attempt += 1
            orphaned = _holder_dead_here(read_lock(folder) or {})
            if (attempt >= tries and not orphaned) or time.monotonic() > deadline:
                raise
            time.sleep(pause_s if not orphaned else 0.25)


class RunLock:
    """The lock of one folder; a context manager. ``what`` says what the holder does (for the message)."""

    def __init__(self, folder: str | os.PathLike[str], what: str = "training"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (a stale one is taken over); a live holder raises :class:`LockedError` naming it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _flock_briefly(fd, self.folder)
            except BlockingIOError:
                os.close(fd)
                holder = read_lock(self.folder) or {"what": "a writer"}
                raise LockedError(
                    f"{self.folder}: already in use ({describe_holder(holder)}); lock file {self.path}", holder
                ) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                    os.close(fd)
                    raise
                holder = read_lock(self.folder)
                if holder and holder.get("identity") != identity() and _pid_holder_alive(holder):
                    os.close(fd)
                    raise LockedError(f"{self.folder}: already in use ({describe_holder(holder)})", holder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file between our open and our lock: try again
                os.close(fd)
                continue
            self._fd = fd
            self._write_record()
            return self
        raise LockedError(f"{self.folder}: could not take the lock {self.path} (another writer keeps taking it)", {})

    def _write_record(self) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "identity": identity(),
            "started": time.time(),
            "what": self.what,
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:8])),
        }
        data = json.dumps(record).encode()
        os.ftruncate(self._fd, 0)  # type: ignore[arg-type]
        os.pwrite(self._fd, data, 0)  # type: ignore[arg-type]

    def release(self) -> None:
        """Remove the lock file and drop the lock (if this process holds it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)  # while still locked, so a waiting opener sees a new file
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
