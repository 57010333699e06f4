"""One supernode per home dir. A second one on the same home would take the first one's
cache files for orphans and sweep them, and both would write the same SQLite database."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "supernode.lock"


def lock_home(home: Path) -> int:
    """Hold an exclusive lock on `<home>/supernode.lock` (holding our pid) for the life of the
    process; → its fd. OSError with a clear message when another supernode holds it."""
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise OSError(f"home dir {home} is in use by another supernode (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
