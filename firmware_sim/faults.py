"""Fault injection for tests: a misbehaving device and a damaged byte stream.

:class:`FaultSettings` describe what goes wrong: device faults (stall, reset at frame k,
camera frames lost) are acted out by the firmware; byte faults (bit flips, dropped bytes,
truncated frames, delays, a cut connection) by :class:`FaultyTransport`, a man in the
middle wrapped around the device's end of the link. Every fault fires once, at a frame id
or at a byte offset counted from the start of the stream in its direction, across
reconnections.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opu_hal.transport import Transport, TransportError


class ByteFault(BaseModel):
    """One fault of the byte stream at byte offset ``at`` of direction ``direction``.

    ``flip``: invert bit ``bit`` of that byte; ``drop``: lose ``count`` bytes; ``truncate``:
    lose the rest of the frame being written (device to host only); ``delay``: hold the
    stream for ``seconds``; ``cut``: close the connection.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    direction: Literal["to_host", "to_device"] = "to_host"
    at: int = Field(ge=0, description="byte offset in the stream of this direction")
    kind: Literal["flip", "drop", "truncate", "delay", "cut"]
    bit: int = Field(0, ge=0, le=7)
    count: int = Field(1, ge=1)
    seconds: float = Field(0.0, ge=0, description="hold time of a delay (s)")


class FaultSettings(BaseModel):
    """Faults a test injects into the emulated device and its link."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stall_at_frame: int | None = Field(None, ge=0, description="stop answering before acquiring this frame id")
    stall_s: float = Field(0.0, ge=0, description="length of the stall (s)")
    reset_at_frame: int | None = Field(None, ge=0, description="reboot before acquiring this frame id")
    drop_camera_frames: tuple[int, ...] = Field((), description="frame ids the camera fails to deliver")
    byte_faults: tuple[ByteFault, ...] = ()


class FaultState:
    """Which faults already fired (shared by the firmware and every connection's wrapper)."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._fired: set[object] = set()
        self.offsets = {"to_host": 0, "to_device": 0}

    def fire_once(self, key: object) -> bool:
        """True the first time ``key`` is asked for."""
        with self._lock:
            if key in self._fired:
                return False
            self._fired.add(key)
            return True

    def frame_fault(self, kind: str, first: int, count: int) -> bool:
        """Whether the one-shot device fault ``kind`` (stall/reset) falls in frames [first, first+count)."""
        at = getattr(self.settings, f"{kind}_at_frame")
        return at is not None and first <= at < first + count and self.fire_once((kind, at))

    def dropped_camera_frames(self, first: int, count: int) -> list[int]:
        """Frame ids in [first, first+count) the camera loses (each once)."""
        return [f for f in self.settings.drop_camera_frames if first <= f < first + count and self.fire_once(("drop", f))]


class FaultyTransport(Transport):
    """Wraps the device's transport and damages the bytes passing through it."""

    def __init__(self, inner: Transport, state: FaultState) -> None:
        super().__init__(inner.write_timeout_s)
        self.inner, self.state = inner, state
        self._open = inner.is_open

    def __repr__(self) -> str:
        return f"FaultyTransport({self.inner!r})"

    def _do_open(self, timeout_s: float) -> None:
        self.inner.open(timeout_s)

    def _do_close(self) -> None:
        self.inner.close()

    def _faults(self, direction: str, start: int, stop: int) -> list[ByteFault]:
        return sorted(
            (
                f
                for f in self.state.settings.byte_faults
                if f.direction == direction and start <= f.at < stop and self.state.fire_once(f)
            ),
            key=lambda f: f.at,
        )

    def _damage(self, direction: str, data: bytes) -> bytes:
        """Apply the faults falling in this piece of the stream; may sleep or raise on a cut."""
        start = self.state.offsets[direction]
        self.state.offsets[direction] = start + len(data)
        faults = self._faults(direction, start, start + len(data))
        if not faults:
            return data
        out = bytearray()
        pos = 0
        buf = bytearray(data)
        for fault in faults:
            at = fault.at - start
            if at < pos:
                continue
            out += buf[pos:at]
            pos = at
            if fault.kind == "flip":
                buf[at] ^= 1 << fault.bit
            elif fault.kind == "drop":
                pos = at + fault.count
            elif fault.kind == "truncate":
                pos = len(buf)
            elif fault.kind == "delay":
                if direction == "to_host" and out:
                    self.inner.write(bytes(out))
                    out.clear()
                time.sleep(fault.seconds)
            elif fault.kind == "cut":
                if direction == "to_host" and out:
                    self.inner.write(bytes(out))
                self.inner.close()
                self._open = False
                raise TransportError(f"{self}: connection cut by fault injection at byte {fault.at}")
        out += buf[pos:]
        return bytes(out)

    def _do_write(self, data: memoryview) -> None:
        damaged = self._damage("to_host", bytes(data))
        if damaged:
            self.inner.write(damaged)

    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes:
        data = self.inner.read(max_bytes, timeout_s)
        return self._damage("to_device", data) if data else data
