"""Resume after a firmware reboot: a real firmware process killed (SIGKILL) mid-batch and restarted.

The firmware process stalls before frame 700 of a 2,000-frame transform in chunks of 100
(an injected stall, so that the kill lands mid-batch on a loaded machine), is killed and a
new one, with the same seed and no faults, listens on the same port. The driver re-opens the
link, sees the new boot id, re-sends CONFIGURE with the counters of the last frames it
received and resumes at the first chunk not received (docs/protocol.md, section 2): the
values are those of a fault-free run of the same seed (ideal fidelity), the frame ids too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np

from firmware_sim import EmulatorParams
from firmware_sim.firmware import Firmware
from firmware_sim.hosting import TCPFirmwareServer
from opu_hal import OPU

OPTIONS = ["--seed", "11", "--fidelity", "ideal", "--dmd-shape", "32x32", "--camera-shape", "10x30"]
PARAMS = EmulatorParams(seed=11, dmd_shape=(32, 32), camera_shape=(10, 30), fidelity="ideal")
BATCH, N_FEATURES, N_COMPONENTS, CHUNK, STALL_AT = 2000, 1000, 300, 100, 700
X = np.random.default_rng(5).random((BATCH, N_FEATURES)) < 0.5
WIRE = f"chunk_frames={CHUNK}&retries=20&timeout_s=2"


def transform(url: str, out: dict) -> None:
    try:
        with OPU(f"{url}?{WIRE}", n_components=N_COMPONENTS, progress=False,
                 settings={"max_batch_frames": BATCH}) as opu:
            opu.fit1d(n_features=N_FEATURES)
            out["result"] = opu.transform(X)
    except BaseException as exc:  # surfaced by the test
        out["error"] = exc


def firmware(listen: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "firmware_sim", "--listen", listen, *OPTIONS, *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_transform_survives_a_firmware_process_killed_and_restarted_mid_batch(caplog):
    clean: dict = {}
    fw = Firmware(PARAMS)
    server = TCPFirmwareServer(fw).start()
    try:
        transform(server.url, clean)
    finally:
        fw.close()
        server.close()

    stall = json.dumps({"stall_at_frame": STALL_AT, "stall_s": 60})
    first = firmware("127.0.0.1:0", "--faults", stall)
    url = first.stdout.readline().strip()
    out: dict = {}
    worker = threading.Thread(target=transform, args=(url, out))
    second = None
    with caplog.at_level("WARNING", logger="opu_hal.backends.wire"):
        worker.start()
        try:
            for line in first.stderr:  # the firmware says when it stalls, mid-batch
                if "stall before frame" in line:
                    break
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            second = firmware(url.removeprefix("socket://"))
            assert second.stdout.readline().strip() == url
            worker.join(120)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
    assert not worker.is_alive()
    assert "error" not in out, repr(out.get("error"))
    assert any(f"resuming at frame {STALL_AT}" in r.getMessage() for r in caplog.records)  # it did reboot mid-batch
    result = out["result"]
    np.testing.assert_array_equal(result.context.frame_ids, clean["result"].context.frame_ids)
    np.testing.assert_allclose(result.context.timestamps_us, clean["result"].context.timestamps_us)
    reference = np.asarray(clean["result"])
    np.testing.assert_allclose(np.asarray(result), reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())
