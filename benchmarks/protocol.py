"""Wire-protocol figures, measured in one run against references measured in the same run.

1. Bulk camera frames over socket:// loopback (firmware process, optics off), as a
   fraction of a plain TCP socket carrying the same bytes between two processes; the two
   alternate, repeat after repeat, so that both see the same load of a shared machine.
2. Request round trip: PING over socket:// loopback (median, us), next to a plain socket's
   round trip between two processes.
3. Host-side frame pipeline at real sizes: 10,000 features drawn on 1,039,680-mirror DMD
   frames, bit-packed and sent, 2040 x 64 camera frames received and checked, against a
   firmware process with its optics switched off; frames per second.
4. Repeated faults: a transform (2,000 frames, N=1,000, M=300, ideal fidelity) through a TCP
   proxy damaging 0, 0.5, 1, 2 and 5 % of the segments both ways (half bit flips, half
   deleted bytes; ``firmware_sim.corrupting_proxy``) to a firmware process, in chunks of 128
   frames with 3 retries: the share of runs that return the fault-free result, throughput
   (frames/s, median of the successful runs) and its ratio to the fault-free runs through
   the same proxy in the same run (rates alternate run after run); wrong results (values
   not those of the fault-free run, or frame ids not consecutive) are counted (must be 0).

    python benchmarks/protocol.py [--quick] [--sections bulk,ping,pipeline,faults]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

# benchmarks/calibration.py would shadow the calibration package: keep this directory off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from firmware_sim.corrupting_proxy import CorruptingProxy  # noqa: E402
from opu_hal import OPU, OPUError  # noqa: E402
from opu_hal.transport import split_host_port  # noqa: E402

SECTIONS = ("bulk", "ping", "pipeline", "faults")
FAULT_RATES = (0.0, 0.005, 0.01, 0.02, 0.05)

PLAIN_SERVER = r"""
import socket, struct, sys
srv = socket.create_server(("127.0.0.1", 0)); print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept(); block = bytes(1 << 20)
while True:
    head = conn.recv(8)
    if len(head) < 8: break
    (n,) = struct.unpack("<Q", head)
    view = memoryview(block)
    while n:
        k = min(n, len(block)); conn.sendall(view[:k]); n -= k
"""


def firmware(*options: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "firmware_sim", "--listen", "127.0.0.1:0", *options],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


class PlainSocket:
    """The reference: a plain TCP socket from another process, sending ``total`` bytes on request."""

    def __init__(self) -> None:
        import socket

        self.proc = subprocess.Popen([sys.executable, "-c", PLAIN_SERVER], stdout=subprocess.PIPE, text=True)
        self.sock = socket.create_connection(("127.0.0.1", int(self.proc.stdout.readline())))
        self.buf = bytearray()

    def receive(self, total: int) -> float:
        """Seconds to receive ``total`` bytes (into a buffer allocated once)."""
        if len(self.buf) != total:
            self.buf = bytearray(total)
        t0 = time.perf_counter()
        self.sock.sendall(struct.pack("<Q", total))
        view, got = memoryview(self.buf), 0
        while got < total:
            got += self.sock.recv_into(view[got:], total - got)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.sock.close()
        self.proc.terminate()
        self.proc.wait()


def bulk_gbps(url: str, frames: int, repeats: int) -> tuple[float, float]:
    """(wire, plain) GB/s, best of ``repeats``; the two alternate so that both see the same machine load."""
    plain = PlainSocket()
    try:
        with OPU(url, n_components=2040 * 64, progress=False, settings={"max_batch_frames": frames}) as opu:
            opu.fit1d(n_features=4)
            x = np.zeros((frames, 4), dtype=bool)
            nbytes = opu.transform(x).nbytes  # warm up
            plain.receive(nbytes)
            wire_s = plain_s = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                opu.transform(x)
                wire_s = min(wire_s, time.perf_counter() - t0)
                plain_s = min(plain_s, plain.receive(nbytes))
    finally:
        plain.close()
    return nbytes / wire_s / 1e9, nbytes / plain_s / 1e9


def ping_us(url: str, count: int) -> tuple[float, float]:
    """(wire, plain) median round trips (us): PING against a plain socket's 8-byte request and
    16-byte reply between two processes, alternating so that both see the same machine state
    (an idle virtual machine wakes its processes slowly, a busy one quickly)."""
    plain = PlainSocket()
    try:
        with OPU(url, n_components=1, progress=False) as opu:
            for _ in range(50):
                opu.backend.ping()
                plain.receive(16)
            wire, reference = [], []
            for _ in range(count):
                wire.append(opu.backend.ping())
                reference.append(plain.receive(16))
    finally:
        plain.close()
    return statistics.median(wire) * 1e6, statistics.median(reference) * 1e6


def pipeline_fps(url: str, frames: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    x = rng.random((frames, 10_000)) < 0.5
    with OPU(url, n_components=2040 * 64, progress=False, settings={"max_batch_frames": frames}) as opu:
        opu.fit1d(n_features=10_000)
        assert opu.layout.dmd_shape == (912, 1140)
        opu.transform(x[:50])
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            y = opu.transform(x)
            best = min(best, time.perf_counter() - t0)
        assert y.shape == (frames, 2040 * 64)
    return frames / best


def faulty_transform(upstream: str, x: np.ndarray, rate: float, seed: int, timeout_s: float):
    """(result or None if an OPUError was raised, seconds) of one transform through a corrupting proxy."""
    proxy = CorruptingProxy(split_host_port(upstream.removeprefix("socket://")), rate, seed=seed)
    url = f"socket://127.0.0.1:{proxy.port}?chunk_frames=128&retries=3"
    try:
        with OPU(url, n_components=300, timeout_s=timeout_s, progress=False,
                 settings={"max_batch_frames": len(x)}) as opu:
            opu.fit1d(n_features=x.shape[1])
            t0 = time.perf_counter()
            try:
                result = opu.transform(x)
            except OPUError:
                return None, time.perf_counter() - t0
            return result, time.perf_counter() - t0
    finally:
        proxy.close()


def fault_rates(url: str, frames: int, runs: int, timeout_s: float) -> list[tuple[float, int, int, float, int]]:
    """Per fault rate: (rate, successes, runs, median frames/s of the successes or nan, wrong results)."""
    x = np.random.default_rng(5).random((frames, 1000)) < 0.5
    reference, _ = faulty_transform(url, x, 0.0, 0, timeout_s)  # also a warm-up
    if reference is None:
        raise RuntimeError("the fault-free transform failed")
    times: dict[float, list[float]] = {rate: [] for rate in FAULT_RATES}
    wrong = dict.fromkeys(FAULT_RATES, 0)
    for run in range(runs):
        for rate in FAULT_RATES:  # alternate, so that every rate sees the same machine load
            result, seconds = faulty_transform(url, x, rate, run + 1, timeout_s)
            if result is None:
                continue
            ids = result.context.frame_ids  # the device's counter runs on from one connection to the next
            if np.array_equal(ids - ids[0], np.arange(frames)) and np.allclose(
                    result, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max()):
                times[rate].append(seconds)
            else:
                wrong[rate] += 1
    return [(rate, len(times[rate]), runs, frames / statistics.median(times[rate]) if times[rate] else float("nan"),
             wrong[rate]) for rate in FAULT_RATES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, fewer repeats")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"--sections: expected names among {', '.join(SECTIONS)}, got {', '.join(sorted(unknown))}")
    frames, repeats = (200, 2) if args.quick else (1000, 5)

    procs: list[subprocess.Popen] = []

    def start(*options: str) -> str:
        proc, url = firmware(*options)
        procs.append(proc)
        return url

    try:
        if "bulk" in sections or "ping" in sections:
            bulk_url = start("--optics", "off", "--dmd-shape", "8x8", "--camera-shape", "1088x2040")
        if "bulk" in sections:
            wire, plain = bulk_gbps(bulk_url, frames, repeats)
            print(f"bulk camera frames over socket:// loopback: {wire:.2f} GB/s; plain socket, same bytes: "
                  f"{plain:.2f} GB/s; ratio {wire / plain:.0%} (target >= 50 %)")
        if "ping" in sections:
            latency, plain_latency = ping_us(bulk_url, 2000)
            print(f"request round trip (PING, socket:// loopback): median {latency:.0f} us (target < 200 us); "
                  f"plain socket round trip between two processes: {plain_latency:.0f} us; "
                  f"protocol overhead {latency - plain_latency:.0f} us")
        if "pipeline" in sections:
            fps = pipeline_fps(start("--optics", "off"), frames, repeats)
            print(f"host frame pipeline, 10,000 features -> 912 x 1140 DMD frames, 2040 x 64 camera ROI, optics off: "
                  f"{fps:,.0f} frames/s (target >= 2,000)")
        if "faults" in sections:
            batch, runs, timeout_s = (200, 1, 0.1) if args.quick else (2000, 3, 0.25)
            url = start("--seed", "11", "--dmd-shape", "32x32", "--camera-shape", "10x30", "--fidelity", "ideal")
            rows = fault_rates(url, batch, runs, timeout_s)
            print(f"repeated faults: {batch} frames (N=1,000, M=300) through a proxy damaging a share of the "
                  f"segments, chunks of 128, 3 retries, timeout {timeout_s} s; {runs} runs per rate")
            reference = rows[0][3]
            for rate, ok, total, fps, wrong in rows:
                print(f"faults {rate:.1%}: success {ok}/{total} ({ok / total:.0%}); {fps:,.0f} frames/s; "
                      f"{fps / reference:.2f} x fault-free; {wrong} wrong results")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
