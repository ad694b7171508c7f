"""``opu-hal serve`` under strangers and crashing clients, on real sockets to a server process.

Strangers that connect and say nothing, send PINGs, or announce huge frames must neither
lock real clients out nor cost the server memory or threads; clients killed mid-transfer
(connection reset without BYE) must not leave their reply caches behind. The server runs
in a process of its own, so its RSS and thread count are measured alone (psutil).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest

from opu_hal import OPU
from opu_hal.backends.base import DeviceConfig
from opu_hal.backends.wire import WireBackend
from opu_hal.layout import layout_1d
from opu_hal.protocol.frames import HEADER, MsgType, frame_bytes
from opu_hal.transport import TCPTransport

DMD, CAMERA = (2, 4), (200, 200)
DEVICE = f"emu://?seed=3&fidelity=ideal&bit_depth=16&dmd_shape={DMD[0]}x{DMD[1]}&camera_shape={CAMERA[0]}x{CAMERA[1]}"
TOKEN = "correct-horse-battery"
AUTH_TIMEOUT_S = 4.0
OPTIONS = {"max_clients": 4, "auth_timeout_s": AUTH_TIMEOUT_S, "session_linger_s": 0.2}
M = CAMERA[0] * CAMERA[1]  # 40,000 outputs of 2 bytes: an 8 MB reply for 100 frames

SERVER = textwrap.dedent(
    """
    import json, sys
    from opu_hal.sharing import SharingServer
    server = SharingServer(sys.argv[1], sys.argv[2], **json.loads(sys.argv[3])).start()
    print(server.address[1], flush=True)
    sys.stdin.readline()
    server.close()
    """
)


@pytest.fixture
def server():
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, DEVICE, TOKEN, json.dumps(OPTIONS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        port = int(proc.stdout.readline())
        yield port, psutil.Process(proc.pid)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def transform_once(port: int, batch: int = 20) -> np.ndarray:
    with OPU(f"socket://127.0.0.1:{port}?token={TOKEN}", n_components=500, progress=False, timeout_s=10) as opu:
        opu.fit1d(n_features=8)
        return np.asarray(opu.transform(np.random.default_rng(0).random((batch, 8)) < 0.5))


def kill_mid_transfer(port: int) -> None:
    """A client that asks for an 8 MB reply, reads 1 MB of it and dies (connection reset, no BYE)."""
    raw = socket.create_connection(("127.0.0.1", port))
    backend = WireBackend(lambda: TCPTransport("127.0.0.1", port, sock=raw), token=TOKEN, retries=0)
    backend.open(10)
    backend.configure(DeviceConfig(layout_1d(8, DMD), M, None, None))
    features = np.random.default_rng(1).random((100, 8)) < 0.5
    out = memoryview(np.empty(100 * M * 2, dtype=np.uint8))
    request = next(backend._requests(features.astype(np.uint8), [(0, 100)], 0, out))
    backend.client.transport.write(frame_bytes(request.type, request.seq, request.payload))
    received = 0
    while received < 2**20:
        received += len(backend.client.transport.read(2**16, 10))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # a reset, as when the process is killed


def settle(proc: psutil.Process, threads: int, timeout_s: float = 30.0) -> tuple[int, int]:
    """Wait (bounded) for the server's thread count to come back to ``threads``; its RSS and thread count."""
    deadline = time.monotonic() + timeout_s
    while proc.num_threads() > threads and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the sessions' linger, then a sweep
    return proc.memory_info().rss, proc.num_threads()


def test_idle_strangers_do_not_lock_out_a_client_with_the_token(server):
    port, proc = server
    reference = transform_once(port)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    try:
        pinger = idle[0]
        pinger.sendall(frame_bytes(MsgType.PING, 7, b"are you there"))
        np.testing.assert_array_equal(transform_once(port), reference)  # 50 strangers (the figure) > max_clients = 4
        pinger.settimeout(AUTH_TIMEOUT_S + 5)
        assert pinger.recv(100) == b""  # no PONG before HELLO; closed at the deadline
        t0 = time.monotonic()
        idle[-1].settimeout(5)
        assert idle[-1].recv(100) == b""  # every stranger is closed once the deadline passed
        assert time.monotonic() - t0 < 5
    finally:
        for sock in idle:
            sock.close()


def test_strangers_and_crashing_clients_leave_no_memory_or_threads_behind(server):
    port, proc = server
    # Warm up until the bounded worker pools (which grow one thread per busy submit, so by how
    # loaded the machine is) stop growing: every code path used, the baseline then fixed.
    counts: list[int] = []
    while len(counts) < 8 and (len(counts) < 3 or counts[-1] != counts[-3]):
        transform_once(port)
        kill_mid_transfer(port)
        counts.append(settle(proc, 10**6, 0)[1])
    rss0, threads0 = settle(proc, 10**6, 0)
    print(f"server before: {rss0 / 2**20:.0f} MB, {threads0} threads")
    for _ in range(200):
        socket.create_connection(("127.0.0.1", port)).close()
    huge = HEADER.pack(b"\xc5\x3a", 1, MsgType.HELLO, 1, 64 * 2**20, 0)  # a 64 MiB HELLO announced
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            try:
                sock.sendall(huge + bytes(4 * 2**20))
            except OSError:
                pass  # refused early: the server closed the connection
    for _ in range(20):
        kill_mid_transfer(port)
    rss, threads = settle(proc, threads0)
    print(f"server after 200 connect-close, 20 x 64 MiB headers, 20 killed clients: {rss / 2**20:.0f} MB, {threads} threads")
    assert threads <= threads0, (threads, threads0)
    assert rss - rss0 < 50 * 2**20, (rss / 2**20, rss0 / 2**20)
    transform_once(port)  # and the server still serves


def test_reply_caches_sharing_a_budget_hold_at_most_its_bytes():
    from opu_hal.protocol.device_side import CacheBudget, Reply, ReplyCache

    budget = CacheBudget(10_000)
    caches = [ReplyCache(16, budget) for _ in range(3)]
    for seq in range(1, 11):
        for cache in caches:
            cache.put(seq, 0, Reply(MsgType.FRAMES, [bytes(1000)]))
            assert budget.used <= 10_000
    assert budget.used == 10_000
    assert caches[2].get(10, 0) is not None and caches[0].get(1, 0) is None  # the oldest went first
    for cache in caches:
        cache.clear()
    assert budget.used == 0
