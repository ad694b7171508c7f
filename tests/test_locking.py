"""The exclusive device lock across processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import textwrap

import pytest

from opu_hal import OPU, DeviceBusyError, OPUError
from opu_hal.backends.emulated import EmulatedBackend
from opu_hal.locking import DeviceLock

DEVICE = "socket://opu-lab:5025"

TRY_ACQUIRE = textwrap.dedent(
    """
    import sys
    from opu_hal.locking import DeviceLock
    from opu_hal.errors import DeviceBusyError
    lock = DeviceLock(sys.argv[1], sys.argv[2])
    try:
        lock.acquire()
    except DeviceBusyError as exc:
        print("busy:", exc)
    else:
        print("acquired")
    """
)

HOLD = textwrap.dedent(
    """
    import sys, time
    from opu_hal.locking import DeviceLock
    DeviceLock(sys.argv[1], sys.argv[2]).acquire()
    print("held", flush=True)
    time.sleep(60)
    """
)


def other_process_tries(directory) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY_ACQUIRE, DEVICE, str(directory)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_second_process_is_refused_while_the_lock_is_held(tmp_path):
    lock = DeviceLock(DEVICE, tmp_path)
    lock.acquire()
    try:
        answer = other_process_tries(tmp_path)
        assert answer == f"busy: {DEVICE} is in use by another process (pid {os.getpid()})"
    finally:
        lock.release()
    assert other_process_tries(tmp_path) == "acquired"


def test_lock_is_released_when_the_holder_dies(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, DEVICE, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = DeviceLock(DEVICE, tmp_path)
        with pytest.raises(DeviceBusyError, match=rf"^{DEVICE} is in use by another process \(pid {holder.pid}\)"):
            lock.acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    lock.acquire()  # the operating system dropped the dead holder's lock
    lock.release()


def test_locks_are_per_device_and_reentrant(tmp_path):
    a, b = DeviceLock(DEVICE, tmp_path), DeviceLock("socket://other:5025", tmp_path)
    a.acquire()
    b.acquire()  # another device: no conflict
    a.acquire()  # the holder asking again is a no-op
    with pytest.raises(DeviceBusyError):
        DeviceLock(DEVICE, tmp_path).acquire()  # a second user in this process is refused too
    a.release()
    a.release()  # releasing twice is harmless
    c = DeviceLock(DEVICE, tmp_path)
    c.acquire()
    c.release()
    b.release()


def test_opu_takes_the_lock_of_an_exclusive_device(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(EmulatedBackend, "exclusive", True)
    url = "emu://?fidelity=ideal&camera_shape=10x10"
    first = OPU(url, n_components=5, progress=False).open()
    try:
        second = OPU(url, n_components=5, progress=False)
        with pytest.raises(DeviceBusyError, match=rf"in use by another OPU in this process \(pid {os.getpid()}\)"):
            second.open()
        assert not second.backend.is_open
    finally:
        first.close()
    # a failed open (n_components above the camera) gives the lock back
    with pytest.raises(ValueError, match="^n_components"):
        OPU(url, n_components=101, progress=False).open()
    with OPU(url, n_components=5, progress=False) as opu:
        assert opu.backend.is_open


def test_lock_files_live_in_a_private_per_user_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    lock = DeviceLock(DEVICE)
    lock.acquire()
    try:
        folder = lock.path.parent
        assert folder.parent == tmp_path and str(os.getuid()) in folder.name
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
    finally:
        lock.release()


def test_runtime_directory_is_used_when_there_is_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    lock = DeviceLock(DEVICE)
    assert lock.path.parent == tmp_path / "opu_hal"


def test_a_symlink_planted_at_the_lock_path_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    lock = DeviceLock(DEVICE, tmp_path)
    lock.path.symlink_to(victim)
    with pytest.raises(OPUError, match="lock file"):
        lock.acquire()
    assert victim.read_text() == "precious"


def test_a_foreign_or_open_lock_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / f"opu_hal-{os.getuid()}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.symlink_to(elsewhere)  # a directory planted by someone else, as a symlink
    with pytest.raises(OPUError, match="lock directory"):
        DeviceLock(DEVICE).acquire()


def test_a_second_opu_in_this_process_is_told_so(tmp_path):
    lock = DeviceLock(DEVICE, tmp_path)
    lock.acquire()
    try:
        with pytest.raises(DeviceBusyError, match=r"in use by another OPU in this process \(pid \d+\)") as info:
            DeviceLock(DEVICE, tmp_path).acquire()
        assert "another process" not in str(info.value)
    finally:
        lock.release()
