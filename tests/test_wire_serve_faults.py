"""``opu-hal serve`` behind a corrupting link: a re-plan gives the frame ids of a fault-free run.

When an ACQUIRE's retries are spent on corruption, the client halves its chunks and
re-sends CONFIGURE with the counters of the last frames it received. The defect: serve
ignored those counters, so the frames the server had acquired for the lost reply left a
gap in the ids, and the transform failed with "frame ids of consecutive chunks are not
consecutive". Serve now shifts the ids it reports to a client so that its next frame gets
the id the CONFIGURE asks for (docs/protocol.md, section 6).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from firmware_sim.corrupting_proxy import CorruptingProxy
from opu_hal import OPU
from opu_hal.transport import split_host_port

DEVICE = "emu://?seed=11&fidelity=ideal&dmd_shape=32x32&camera_shape=10x30"
TOKEN = "correct-horse-battery"
BATCH, N_FEATURES, N_COMPONENTS = 2000, 1000, 300
X = np.random.default_rng(5).random((BATCH, N_FEATURES)) < 0.5


def serve() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "opu_hal.cli", "serve", DEVICE, "--port", "0", "--token", TOKEN],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def transform(proc: subprocess.Popen, rate: float):
    address = proc.stdout.readline().split(" on ")[1].strip().removeprefix("socket://").split("?")[0]
    proxy = CorruptingProxy(split_host_port(address), rate, seed=3)
    try:
        url = f"socket://127.0.0.1:{proxy.port}?token={TOKEN}&chunk_frames=128&retries=3"
        with OPU(url, n_components=N_COMPONENTS, timeout_s=0.25, progress=False,
                 settings={"max_batch_frames": BATCH}) as opu:
            opu.fit1d(n_features=N_FEATURES)
            return opu.transform(X), proxy
    finally:
        proxy.close()


def test_a_transform_through_serve_and_a_corrupting_link_has_the_fault_free_frame_ids(caplog):
    clean_server, faulty_server = serve(), serve()  # two fresh devices, started together
    try:
        clean, _ = transform(clean_server, 0.0)
        with caplog.at_level("WARNING", logger="opu_hal.backends.wire"):
            result, proxy = transform(faulty_server, 0.02)
    finally:
        for proc in (clean_server, faulty_server):
            proc.terminate()
            proc.wait(10)
    assert proxy.damaged >= 5
    assert any("resuming in chunks" in r.getMessage() for r in caplog.records)  # a re-plan did happen
    np.testing.assert_array_equal(result.context.frame_ids, clean.context.frame_ids)
    np.testing.assert_allclose(np.asarray(result), np.asarray(clean), rtol=1e-5, atol=1e-6 * np.abs(clean).max())
