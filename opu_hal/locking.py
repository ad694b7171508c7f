"""An exclusive lock on a device across processes (advisory, via ``fcntl.flock``)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import DeviceBusyError


class DeviceLock:
    """Held by the one process using a device; a second ``acquire`` raises DeviceBusyError.

    Parameters
    ----------
    identity:
        The device as shown in messages (a URL with its secrets masked).
    directory:
        Where the lock files live; default the temporary directory.
    keys:
        The device's names, one lock file each (e.g. every address its host name resolves
        to): a second user of any of them is refused. Default: ``identity`` alone.

    The operating system releases the lock when the holder exits, even if it crashes.
    """

    def __init__(self, identity: str, directory: str | Path | None = None, keys: Sequence[str] | None = None) -> None:
        self.identity = identity
        self.keys = tuple(keys) if keys else (identity,)
        folder = Path(directory or tempfile.gettempdir())
        self.paths = [folder / f"opu_hal-{hashlib.sha1(key.encode()).hexdigest()[:16]}.lock" for key in self.keys]
        self._fds: list[int] = []

    @property
    def path(self) -> Path:
        """The lock file of the first key."""
        return self.paths[0]

    def acquire(self) -> None:
        """Take the lock (a no-op if this object holds it) or raise :class:`DeviceBusyError` naming the holder's pid."""
        if self._fds:
            return
        try:
            for key, path in zip(self.keys, self.paths):
                self._fds.append(self._take(key, path))
        except BaseException:
            self.release()
            raise

    def _take(self, key: str, path: Path) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            where = "" if key == self.identity else f" ({key})"
            raise DeviceBusyError(f"{self.identity}{where} is in use by another process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def release(self) -> None:
        """Give the lock back; safe to call when not held."""
        while self._fds:
            fd = self._fds.pop()
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
