"""A simulated ALP library: the C functions of the Vialux API with their calling convention.

Output arguments arrive as ``ctypes.byref`` pointers, as the real DLL receives them.
Codes follow the ALP documentation: ALP_NOT_AVAILABLE for a busy device number,
ALP_PARM_INVALID for unknown parameters, ALP_MEMORY_FULL beyond the on-board memory,
ALP_SEQ_IN_USE when freeing a running sequence. ``fail`` makes the next call of a
function return a given code (tests of error handling).
"""

from __future__ import annotations

import ctypes

import numpy as np

from opu_hal.devices import alp

OK = alp.ALP_OK
NOT_AVAILABLE, PARM_INVALID, MEMORY_FULL, SEQ_IN_USE = 1003, 1005, 1007, 1008


class SimulatedAlpLibrary:
    """One simulated DMD of ``shape`` mirrors and ``memory`` frames of on-board memory."""

    def __init__(self, shape: tuple[int, int] = (24, 40), memory: int = 64) -> None:
        self.shape, self.memory = shape, memory
        self.allocated = False
        self.sequences: dict[int, dict] = {}
        self.running: int | None = None
        self.shown: list[np.ndarray] = []
        self.calls: list[str] = []
        self.failures: dict[str, int] = {}
        self.dev_control: dict[int, int] = {}
        self.proj_control: dict[int, int] = {}
        self._next = 1

    def fail(self, function: str, code: int) -> None:
        """The next call of ``function`` returns ``code``."""
        self.failures[function] = code

    def _enter(self, name: str) -> int:
        self.calls.append(name)
        return self.failures.pop(name, OK)

    def _used(self) -> int:
        return sum(s["frames"] for s in self.sequences.values())

    def AlpDevAlloc(self, number, flag, dev_ptr) -> int:
        code = self._enter("AlpDevAlloc")
        if code or self.allocated:
            return code or NOT_AVAILABLE
        self.allocated = True
        dev_ptr._obj.value = 1
        return OK

    def AlpDevHalt(self, dev) -> int:
        self.running = None
        return self._enter("AlpDevHalt")

    def AlpDevFree(self, dev) -> int:
        code = self._enter("AlpDevFree")
        self.allocated = code != OK and self.allocated
        return code

    def AlpDevControl(self, dev, what, value) -> int:
        self.dev_control[_id(what)] = _id(value)
        return self._enter("AlpDevControl")

    def AlpDevInquire(self, dev, what, value_ptr) -> int:
        code = self._enter("AlpDevInquire")
        values = {
            alp.ALP_DEVICE_NUMBER: 4242, alp.ALP_VERSION: 4, alp.ALP_AVAIL_MEMORY: self.memory - self._used(),
            alp.ALP_DEV_DISPLAY_HEIGHT: self.shape[0], alp.ALP_DEV_DISPLAY_WIDTH: self.shape[1],
        }
        if code or _id(what) not in values:
            return code or PARM_INVALID
        value_ptr._obj.value = values[_id(what)]
        return OK

    def AlpSeqAlloc(self, dev, bitplanes, frames, seq_ptr) -> int:
        code = self._enter("AlpSeqAlloc")
        if code or _id(bitplanes) != 1 or self._used() + _id(frames) > self.memory:
            return code or MEMORY_FULL
        seq_ptr._obj.value = self._next
        self.sequences[self._next] = {"frames": _id(frames), "control": {}, "timing": None, "data": None}
        self._next += 1
        return OK

    def AlpSeqFree(self, dev, seq) -> int:
        code = self._enter("AlpSeqFree")
        if code or self.running == _id(seq):
            return code or SEQ_IN_USE
        del self.sequences[_id(seq)]
        return OK

    def AlpSeqControl(self, dev, seq, what, value) -> int:
        code = self._enter("AlpSeqControl")
        if not code:
            self.sequences[_id(seq)]["control"][_id(what)] = _id(value)
        return code

    def AlpSeqTiming(self, dev, seq, illuminate, picture, delay, width, trigger_delay) -> int:
        code = self._enter("AlpSeqTiming")
        if not code:
            self.sequences[_id(seq)]["timing"] = _id(picture)
        return code

    def AlpSeqPut(self, dev, seq, offset, count, data) -> int:
        code = self._enter("AlpSeqPut")
        if code:
            return code
        frame_bytes = self.shape[0] * self.shape[1] // 8
        raw = ctypes.string_at(data, _id(count) * frame_bytes)
        self.sequences[_id(seq)]["data"] = np.frombuffer(raw, dtype=np.uint8).reshape(_id(count), self.shape[0], -1)
        return OK

    def AlpProjControl(self, dev, what, value) -> int:
        self.proj_control[_id(what)] = _id(value)
        return self._enter("AlpProjControl")

    def AlpProjStart(self, dev, seq) -> int:
        code = self._enter("AlpProjStart")
        if not code:
            self.running = _id(seq)
            self.shown.append(self.sequences[_id(seq)]["data"])
        return code

    def AlpProjStartCont(self, dev, seq) -> int:
        return self.AlpProjStart(dev, seq)

    def AlpProjHalt(self, dev) -> int:
        code = self._enter("AlpProjHalt")
        if not code:
            self.running = None
        return code

    def AlpProjWait(self, dev) -> int:
        return self._enter("AlpProjWait")


def _id(value) -> int:
    return int(getattr(value, "value", value))
