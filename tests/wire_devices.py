"""Helpers of the wire tests: emulated devices in a separate process (TCP port or pty)."""

from __future__ import annotations

import os
import select
import subprocess
import sys

import numpy as np
from threadpoolctl import threadpool_info

from opu_hal.protocol import MsgType, ProtocolClient, Request
from opu_hal.transport import SerialTransport, TCPTransport, split_host_port


def same_blas_threads_env() -> dict[str, str]:
    """This environment, with numpy's BLAS thread count as it is in this process.

    The emulator's float32 sums depend on how many threads the BLAS splits a product over,
    so a device process compared bitwise with this one must use the same count (an earlier
    test, e.g. a Dask cluster, may have left OPENBLAS_NUM_THREADS=1 in os.environ).
    """
    env = dict(os.environ)
    numpy_libs = os.path.dirname(np.__file__) + ".libs"
    for pool in threadpool_info():
        if pool["internal_api"] == "openblas" and pool["filepath"].startswith(numpy_libs):
            env["OPENBLAS_NUM_THREADS"] = str(pool["num_threads"])
    return env


class FirmwareProcess:
    """``python -m firmware_sim`` in a subprocess; ``url`` is the first line it prints."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=same_blas_threads_env(),
        )
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The device URL (waits up to 60 s for the process to print it)."""
        if self._url is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], 60)
            line = self.proc.stdout.readline().strip() if ready else ""
            if not line:
                self.close()
                raise RuntimeError("firmware_sim did not start")
            self._url = line
        return self._url

    def close(self) -> None:
        """Stop the process."""
        self.proc.terminate()
        self.proc.wait(10)


def reset_device(url: str) -> None:
    """Send RESET, as a power cycle: the device forgets its configuration and counters."""
    if url.startswith("socket://"):
        transport = TCPTransport(*split_host_port(url[len("socket://") :]))
    else:
        transport = SerialTransport(url)
    client = ProtocolClient(transport, timeout_s=10)
    client.connect()
    try:
        client.request(Request(MsgType.RESET, [b"{}"]))
    finally:
        client.close()
