"""Reconnects are bounded, and the device lock knows one device by any of its names.

A real TCP server that accepts every connection and closes it at once: the client must
give up with an OPUError within (retries + 1) x timeout, never recurse.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from firmware_sim import EmulatorParams
from firmware_sim.firmware import Firmware
from firmware_sim.hosting import TCPFirmwareServer
from opu_hal import OPU, DeviceBusyError, OPUError


class SlamServer:
    """Accepts TCP connections and closes each one at once; counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("retries", [0, 2])
def test_a_server_that_slams_the_door_gives_an_opu_error_in_bounded_time(retries):
    server = SlamServer()
    timeout_s = 0.5
    try:
        t0 = time.monotonic()
        opu = OPU(f"socket://127.0.0.1:{server.port}?retries={retries}", n_components=4, timeout_s=timeout_s, progress=False)
        with pytest.raises(OPUError) as info:
            opu.fit1d(n_features=8)
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    assert not isinstance(info.value.__context__, RecursionError)
    assert elapsed <= (retries + 1) * timeout_s + 0.5, elapsed
    assert server.accepted <= 4 * (retries + 1), server.accepted  # a bounded loop, with backoff


def test_localhost_and_its_address_are_one_device(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    firmware = Firmware(EmulatorParams(seed=1, dmd_shape=(8, 8), camera_shape=(4, 4)))
    server = TCPFirmwareServer(firmware).start()
    port = server.url.rsplit(":", 1)[1]
    try:
        with OPU(f"socket://localhost:{port}", n_components=4, progress=False, timeout_s=2):
            with pytest.raises(DeviceBusyError, match="127.0.0.1"):
                OPU(f"socket://127.0.0.1:{port}", n_components=4, progress=False, timeout_s=2).open()
    finally:
        firmware.close()
        server.close()


def test_a_serial_port_is_locked_by_its_real_path(tmp_path):
    from opu_hal.url import resolve_url

    real = tmp_path / "ttyUSB0"
    real.touch()
    (tmp_path / "by-id").symlink_to(real)
    keys = {resolve_url(f"serial://{path}").make_link().keys() for path in (real, tmp_path / "by-id")}
    assert keys == {(f"serial:{real}",)}
