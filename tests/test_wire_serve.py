"""``opu-hal serve``: one device, several clients, a token, limits; ``opu-hal info`` on any URL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from opu_hal import OPU, DeviceBusyError, DeviceError
from opu_hal.cli import main
from opu_hal.protocol import ErrorCode
from opu_hal.sharing import SharingServer

DEVICE = "emu://?seed=4&fidelity=ideal&dmd_shape=20x24&camera_shape=10x30"
TOKEN = "correct-horse-battery"


@pytest.fixture
def server():
    srv = SharingServer(DEVICE, TOKEN, max_clients=3).start()
    yield srv
    srv.close()


def expected(n_features: int, n_components: int, x: np.ndarray, max_batch_frames: int = 1000) -> np.ndarray:
    """The in-process emulator's output, acquired in the same device calls (float sums depend on them)."""
    settings = {"max_batch_frames": max_batch_frames}
    with OPU(DEVICE, n_components=n_components, progress=False, settings=settings) as ref:
        ref.fit1d(n_features=n_features)
        return np.asarray(ref.transform(x))


def test_clients_sharing_a_device_each_get_their_own_results(server):
    jobs = {  # (n_features, n_components, batch): different layouts and ROIs interleaved on one device
        "a": (12, 40, 120),
        "b": (30, 75, 90),
        "c": (7, 15, 150),
    }
    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def client(name: str) -> None:
        n, m, batch = jobs[name]
        x = np.random.default_rng(len(name) + n).random((batch, n)) < 0.5
        try:
            with OPU(f"{server.url}?token={TOKEN}", n_components=m, progress=False,
                     settings={"max_batch_frames": 40}) as opu:
                opu.fit1d(n_features=n)
                for _ in range(3):
                    results[name] = (x, np.asarray(opu.transform(x)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(name,)) for name in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for name, (n, m, _) in jobs.items():
        x, y = results[name]
        np.testing.assert_array_equal(y, expected(n, m, x, max_batch_frames=40))


@pytest.mark.parametrize("suffix", ["", "?token=wrong-token-value"])
def test_a_client_without_the_token_is_refused_before_any_command(server, suffix):
    with pytest.raises(DeviceError, match="token") as info:
        OPU(f"{server.url}{suffix}", n_components=5, timeout_s=2).open()
    assert info.value.code == ErrorCode.UNAUTHORIZED
    assert server.device.configured_for is None  # nothing ran on the device


def test_clients_beyond_the_limit_are_refused(server):
    opus = [OPU(f"{server.url}?token={TOKEN}", n_components=5, progress=False).open() for _ in range(3)]
    try:
        with pytest.raises(DeviceBusyError, match="too many clients"):
            OPU(f"{server.url}?token={TOKEN}", n_components=5, timeout_s=2).open()
    finally:
        for opu in opus:
            opu.close()


def test_messages_respect_the_announced_size_limit():
    server = SharingServer(DEVICE, TOKEN, max_payload=8192).start()
    try:
        with OPU(f"{server.url}?token={TOKEN}", n_components=30, progress=False) as opu:
            assert opu.backend.hello.max_payload == 8192
            opu.fit1d(n_features=20)
            x = np.random.default_rng(0).random((400, 20)) < 0.5  # 400 frames of 60 bytes: several messages
            y = np.asarray(opu.transform(x))
    finally:
        server.close()
    # the device computed the call in several messages: the same values up to float32 summation order
    np.testing.assert_allclose(y, expected(20, 30, x), rtol=1e-5, atol=1e-7)


def test_serve_refuses_a_short_token():
    with pytest.raises(ValueError, match="token"):
        SharingServer(DEVICE, "short")


def test_info_prints_the_handshake_of_a_wire_device(capsys):
    assert main(["info", "sim://?seed=9&dmd_shape=20x24&camera_shape=10x30"]) == 0
    assert re.search(r"handshake max payload\s+[\d,]+ bytes", capsys.readouterr().out)
    assert main(["info", "sim://?seed=9&dmd_shape=20x24&camera_shape=10x30", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["serial"] == "EMU-00000009" and report["dmd_shape"] == [20, 24]
    assert report["handshake"]["protocol_version"] == "1.0" and len(report["handshake"]["boot_id"]) == 32


def test_serve_command_serves_until_terminated():
    proc = subprocess.Popen(
        [sys.executable, "-m", "opu_hal.cli", "serve", DEVICE, "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[1].strip()
        assert url.startswith("socket://127.0.0.1:") and url.endswith(f"?token={TOKEN}")
        with OPU(url, n_components=10, progress=False) as opu:
            opu.fit1d(n_features=8)
            x = np.eye(8, dtype=bool)
            np.testing.assert_array_equal(np.asarray(opu.transform(x)), expected(8, 10, x))
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
