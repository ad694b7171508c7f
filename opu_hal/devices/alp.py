"""``AlpDMD``: Vialux DMDs through the ALP library's C API, called with ctypes.

The driver *has* an :class:`AlpApi`, which wraps a library object exposing the ALP
functions (``AlpDevAlloc``, ``AlpSeqPut``, ...) with the C calling convention: the
vendor's DLL loaded by :func:`load_alp_library`, or a simulated library in tests. Every
call's return code is checked; anything but ``ALP_OK`` raises :class:`AlpError` naming
the function and the code. Sequences are uploaded in ``ALP_DATA_BINARY_TOPDOWN`` format,
which is the bit-packed layout of :mod:`opu_hal.devices.dmd` (MSB first, rows top-down).
Constant values are those of the ALP 4 header ``alp.h``.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np

from ..errors import AlpError, DeviceError
from .common import DeviceIdentity, TriggerMode, TriggerType
from .dmd import DMD, DMDLimits, DMDSettings

logger = logging.getLogger(__name__)

ALP_ID = ctypes.c_ulong
ALP_DEFAULT = 0
ALP_OK = 0
#: Return codes of the ALP API (alp.h).
ALP_ERRORS = {
    1001: "ALP_NOT_ONLINE",
    1002: "ALP_NOT_IDLE",
    1003: "ALP_NOT_AVAILABLE",
    1004: "ALP_NOT_READY",
    1005: "ALP_PARM_INVALID",
    1006: "ALP_ADDR_INVALID",
    1007: "ALP_MEMORY_FULL",
    1008: "ALP_SEQ_IN_USE",
    1009: "ALP_HALTED",
    1010: "ALP_ERROR_INIT",
    1011: "ALP_ERROR_COMM",
    1012: "ALP_DEVICE_REMOVED",
    1013: "ALP_NOT_CONFIGURED",
    1014: "ALP_LOADER_VERSION",
    1018: "ALP_ERROR_POWER_DOWN",
}
# AlpDevInquire / AlpDevControl
ALP_DEVICE_NUMBER = 2000
ALP_VERSION = 2001
ALP_AVAIL_MEMORY = 2003
ALP_SYNCH_POLARITY = 2004
ALP_TRIGGER_EDGE = 2005
ALP_LEVEL_HIGH = 2006
ALP_EDGE_FALLING = 2008
ALP_EDGE_RISING = 2009
ALP_DEV_DISPLAY_HEIGHT = 2057
ALP_DEV_DISPLAY_WIDTH = 2058
# AlpSeqControl
ALP_BIN_MODE = 2104
ALP_BIN_UNINTERRUPTED = 2106
ALP_DATA_FORMAT = 2110
ALP_DATA_BINARY_TOPDOWN = 2
# AlpProjControl
ALP_PROJ_MODE = 2300
ALP_MASTER = 2301
ALP_SLAVE = 2302

#: Shortest and longest picture time of 1-bit sequences (us): 22.7 kHz V-series boards.
PICTURE_TIME_US = (44.0, 10_000_000.0)

_SIGNATURES: dict[str, list[Any]] = {
    "AlpDevAlloc": [ctypes.c_long, ctypes.c_long, ctypes.POINTER(ALP_ID)],
    "AlpDevHalt": [ALP_ID],
    "AlpDevFree": [ALP_ID],
    "AlpDevControl": [ALP_ID, ctypes.c_long, ctypes.c_long],
    "AlpDevInquire": [ALP_ID, ctypes.c_long, ctypes.POINTER(ctypes.c_long)],
    "AlpSeqAlloc": [ALP_ID, ctypes.c_long, ctypes.c_long, ctypes.POINTER(ALP_ID)],
    "AlpSeqFree": [ALP_ID, ALP_ID],
    "AlpSeqControl": [ALP_ID, ALP_ID, ctypes.c_long, ctypes.c_long],
    "AlpSeqTiming": [ALP_ID, ALP_ID, ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_long],
    "AlpSeqPut": [ALP_ID, ALP_ID, ctypes.c_long, ctypes.c_long, ctypes.c_void_p],
    "AlpProjControl": [ALP_ID, ctypes.c_long, ctypes.c_long],
    "AlpProjStart": [ALP_ID, ALP_ID],
    "AlpProjStartCont": [ALP_ID, ALP_ID],
    "AlpProjHalt": [ALP_ID],
    "AlpProjWait": [ALP_ID],
}


def load_alp_library(path: str | None = None) -> Any:
    """The vendor's ALP library (``alp4395`` by default) with every function's argument and return types set."""
    name = path or "alp4395"
    try:
        loader = getattr(ctypes, "WinDLL", ctypes.CDLL)
        lib = loader(name)
    except OSError as exc:
        raise DeviceError(f"ALP: cannot load the ALP library {name!r}: {exc}") from None
    for function, argtypes in _SIGNATURES.items():
        fn = getattr(lib, function)
        fn.argtypes, fn.restype = argtypes, ctypes.c_long
    return lib


class AlpApi:
    """The ALP functions the driver uses, each call checked. ``lib``: the DLL or a simulated library."""

    def __init__(self, lib: Any) -> None:
        missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
        if missing:
            raise TypeError(f"lib: expected an ALP library with {sorted(_SIGNATURES)}, missing {missing}")
        self.lib = lib

    def call(self, function: str, *args: Any) -> None:
        """Call ``function``; raise AlpError unless it returns ALP_OK."""
        code = int(getattr(self.lib, function)(*args))
        if code != ALP_OK:
            name = ALP_ERRORS.get(code, "unknown code")
            raise AlpError(f"ALP: {function} returned {code} ({name})", code)

    def dev_alloc(self, device_number: int) -> ALP_ID:
        dev = ALP_ID()
        self.call("AlpDevAlloc", ctypes.c_long(device_number), ctypes.c_long(ALP_DEFAULT), ctypes.byref(dev))
        return dev

    def dev_inquire(self, dev: ALP_ID, what: int) -> int:
        value = ctypes.c_long()
        self.call("AlpDevInquire", dev, ctypes.c_long(what), ctypes.byref(value))
        return value.value

    def seq_alloc(self, dev: ALP_ID, frames: int) -> ALP_ID:
        seq = ALP_ID()
        self.call("AlpSeqAlloc", dev, ctypes.c_long(1), ctypes.c_long(frames), ctypes.byref(seq))
        return seq


class AlpDMD(DMD):
    """A Vialux DMD. ``lib``: the ALP library (see :func:`load_alp_library`) or a simulated one."""

    def __init__(self, lib: Any, device_number: int = 0, settings: DMDSettings | dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.api = AlpApi(lib)
        self.device_number = device_number
        self._dev: ALP_ID | None = None
        self._seq: ALP_ID | None = None

    def _do_open(self) -> DeviceIdentity:
        self._dev = self.api.dev_alloc(self.device_number)
        try:
            serial = self.api.dev_inquire(self._dev, ALP_DEVICE_NUMBER)
            version = self.api.dev_inquire(self._dev, ALP_VERSION)
        except AlpError:
            self._free_device()
            raise
        return DeviceIdentity(vendor="ViALUX", model="ALP DMD", serial=str(serial), firmware_version=str(version))

    def _free_device(self) -> None:
        dev, self._dev = self._dev, None
        try:
            self.api.call("AlpDevHalt", dev)
        finally:
            self.api.call("AlpDevFree", dev)

    def _do_close(self) -> None:
        try:
            self.api.call("AlpDevHalt", self._dev)  # stops any projection, so the sequence can be freed
            self._free_sequence()
        finally:
            self._free_device()

    def _do_limits(self) -> DMDLimits:
        rows = self.api.dev_inquire(self._dev, ALP_DEV_DISPLAY_HEIGHT)
        cols = self.api.dev_inquire(self._dev, ALP_DEV_DISPLAY_WIDTH)
        memory = self.api.dev_inquire(self._dev, ALP_AVAIL_MEMORY)
        return DMDLimits(
            shape=(rows, cols),
            picture_time_us=PICTURE_TIME_US,
            max_frames=memory,
            continuous=True,
            trigger_types=(TriggerType.SOFTWARE, TriggerType.RISING_EDGE, TriggerType.FALLING_EDGE),
            trigger_modes=(TriggerMode.START,),
        )

    def _do_apply(self, settings: DMDSettings, changed: set[str]) -> None:
        if not settings.trigger_out:
            raise ValueError("trigger_out: expected True, the ALP synch output cannot be switched off")
        slave = settings.trigger_type is not TriggerType.SOFTWARE
        self.api.call("AlpProjControl", self._dev, ALP_PROJ_MODE, ALP_SLAVE if slave else ALP_MASTER)
        if slave:
            edge = ALP_EDGE_RISING if settings.trigger_type is TriggerType.RISING_EDGE else ALP_EDGE_FALLING
            self.api.call("AlpDevControl", self._dev, ALP_TRIGGER_EDGE, edge)
        self.api.call("AlpDevControl", self._dev, ALP_SYNCH_POLARITY, ALP_LEVEL_HIGH)
        if self._seq is not None and "picture_time_us" in changed:
            self._timing(settings.picture_time_us)

    def _timing(self, picture_time_us: float) -> None:
        self.api.call(
            "AlpSeqTiming", self._dev, self._seq,
            ALP_DEFAULT, int(round(picture_time_us)), ALP_DEFAULT, ALP_DEFAULT, ALP_DEFAULT,
        )

    def _free_sequence(self) -> None:
        if self._seq is not None:
            seq, self._seq = self._seq, None
            self.api.call("AlpSeqFree", self._dev, seq)

    def _do_upload(self, packed: np.ndarray) -> None:
        if packed.shape[2] * 8 != self.limits.shape[1]:
            raise ValueError(f"frames: expected a DMD width divisible by 8 for ALP binary data, got {self.limits.shape[1]}")
        self._free_sequence()
        seq = self.api.seq_alloc(self._dev, packed.shape[0])
        self._seq = seq
        self.api.call("AlpSeqControl", self._dev, seq, ALP_DATA_FORMAT, ALP_DATA_BINARY_TOPDOWN)
        self.api.call("AlpSeqControl", self._dev, seq, ALP_BIN_MODE, ALP_BIN_UNINTERRUPTED)
        self._timing(self.settings.picture_time_us)
        data = np.ascontiguousarray(packed)
        self.api.call("AlpSeqPut", self._dev, seq, 0, packed.shape[0], data.ctypes.data_as(ctypes.c_void_p))

    def _do_run(self, continuous: bool) -> None:
        self.api.call("AlpProjStartCont" if continuous else "AlpProjStart", self._dev, self._seq)

    def _do_stop(self) -> None:
        self.api.call("AlpProjHalt", self._dev)
