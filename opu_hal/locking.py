"""An exclusive lock on a device across processes (advisory, via ``fcntl.flock``)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from .errors import DeviceBusyError


class DeviceLock:
    """Held by the one process using a device; a second ``acquire`` raises DeviceBusyError.

    The lock file lives in the temporary directory, named after the device identity; the
    operating system releases it when the holder exits, even if it crashes.
    """

    def __init__(self, identity: str, directory: str | Path | None = None) -> None:
        digest = hashlib.sha1(identity.encode()).hexdigest()[:16]
        self.identity = identity
        self.path = Path(directory or tempfile.gettempdir()) / f"opu_hal-{digest}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (a no-op if this object holds it) or raise :class:`DeviceBusyError` naming the holder's pid."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DeviceBusyError(f"{self.identity} is in use by another process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock back; safe to call when not held."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
