"""An exclusive lock on a device across processes (advisory, via ``fcntl.flock``).

Lock files live in a directory of the user's own: ``$XDG_RUNTIME_DIR/opu_hal`` when there
is a runtime directory, otherwise ``opu_hal-<uid>`` in the temporary directory; created
with mode 0700, refused if it is a symlink, belongs to someone else, or others may write
to it. A lock file is opened with ``O_NOFOLLOW`` (a symlink planted in its place is
refused, never followed), created with mode 0600, and must be a regular file of ours with
one link. So the lock keeps out the user's other processes; other users are kept out by
the device's own permissions (and, for serial ports, pyserial's exclusive open).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import DeviceBusyError, OPUError


class DeviceLock:
    """Held by the one process using a device; a second ``acquire`` raises DeviceBusyError.

    Parameters
    ----------
    identity:
        The device as shown in messages (a URL with its secrets masked).
    directory:
        Where the lock files live; default :func:`lock_directory` (the user's own).
    keys:
        The device's names, one lock file each (e.g. every address its host name resolves
        to): a second user of any of them is refused. Default: ``identity`` alone.

    The operating system releases the lock when the holder exits, even if it crashes.
    """

    def __init__(self, identity: str, directory: str | Path | None = None, keys: Sequence[str] | None = None) -> None:
        self.identity = identity
        self.keys = tuple(keys) if keys else (identity,)
        folder = Path(directory) if directory is not None else lock_directory()
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
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise OPUError(f"{self.identity}: cannot open the lock file {path}: {exc} (a symlink is never followed)") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_nlink != 1:
                raise OPUError(
                    f"{self.identity}: the lock file {path} is not a regular file of this user with one link; remove it"
                )
            if stat.S_IMODE(info.st_mode) != 0o600:
                os.fchmod(fd, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                where = "" if key == self.identity else f" ({key})"
                who = "another OPU in this process" if holder == str(os.getpid()) else "another process"
                raise DeviceBusyError(f"{self.identity}{where} is in use by {who} (pid {holder})") from None
            pid = str(os.getpid()).encode()
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))  # our own regular file, checked above
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self) -> None:
        """Give the lock back; safe to call when not held."""
        while self._fds:
            fd = self._fds.pop()
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock_directory() -> Path:
    """The user's own directory of lock files (created with mode 0700; OPUError if unsafe)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        folder = Path(runtime) / "opu_hal"
    else:
        folder = Path(tempfile.gettempdir()) / f"opu_hal-{os.getuid()}"
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise OPUError(f"cannot create the lock directory {folder}: {exc}") from exc
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OPUError(f"the lock directory {folder} is not a directory of this user (a symlink or someone else's); remove it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)
    return folder
