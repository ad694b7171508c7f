"""The emulated device's firmware: the opu-hal protocol over the physical model.

A state machine (``idle`` after boot, ``configured`` after CONFIGURE, ``acquiring`` while
an ACQUIRE runs) that answers every command of docs/protocol.md. Every camera frame
carries the device's frame counter and timestamp (us); frames the camera fails to
deliver are detected (camera frame count against DMD triggers) and reported as
``FRAMES_DROPPED``. With ``optics=False`` the firmware returns frames without computing
them (for host throughput benchmarks). Faults come from :mod:`firmware_sim.faults`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Callable

import numpy as np

from opu_hal.limits import MAX_BATCH_FRAMES
from opu_hal.protocol.dmd import DMDPacker
from opu_hal.protocol.frames import DEFAULT_MAX_PAYLOAD, Frame, MsgType, crc32_zeros
from opu_hal.protocol.messages import ErrorCode
from opu_hal.protocol.schema import (
    MAX_IN_FLIGHT,
    PROTOCOL_VERSION,
    AcquireHead,
    ByeReply,
    ByeRequest,
    ConfiguredReply,
    ConfigureRequest,
    FramesHead,
    HelloReply,
    HelloRequest,
    ResetReply,
    ResetRequest,
    StatusReply,
    StatusRequest,
    decode_bulk_request,
    decode_hello_request,
    decode_request,
    encode,
    encode_bulk_head,
)
from opu_hal.protocol.device_side import CommandError, Endpoint, Reply

from .faults import FaultSettings, FaultState
from .identity import device_info
from .model import FIRMWARE_VERSION, OPUModel
from .params import EmulatorParams

logger = logging.getLogger(__name__)


class Firmware(Endpoint):
    """One emulated device answering the protocol; its state outlives connections.

    Parameters
    ----------
    params:
        The emulator's physical parameters.
    optics:
        False: return frames of the right size and dtype without computing them.
    faults:
        Faults to act out (tests).
    max_payload:
        Largest request payload accepted (bytes), announced in HELLO.
    """

    def __init__(
        self,
        params: EmulatorParams | None = None,
        *,
        optics: bool = True,
        faults: FaultSettings | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        super().__init__()
        self.params = params or EmulatorParams()
        self.optics = optics
        self.faults = FaultState(faults or FaultSettings())
        self.max_payload = max_payload
        self.on_boot: Callable[[str], None] | None = None
        self.dropped_frames = 0
        self._zeros = np.zeros(0, dtype=np.uint8)  # optics off: the frames sent
        self._stalled = threading.Event()
        self._closing = threading.Event()
        self.model: OPUModel | None = None
        self._boot()

    # ------------------------------------------------------------------ state
    def _boot(self) -> None:
        if self.model is not None:
            self.model.close()
        self.model = OPUModel(self.params)
        self.boot_id = uuid.uuid4().hex
        self.state = "idle"
        self.packer: DMDPacker | None = None
        self.session: str | None = None
        self.last_acquire_seq: int | None = None
        self.cache.clear()
        logger.info("booted (boot id %s)", self.boot_id)

    def reboot(self) -> None:
        """Lose all state, as at power-up, and announce the new boot id."""
        with self.lock:
            self._boot()
        if self.on_boot is not None:
            self.on_boot(self.boot_id)

    @property
    def stalled(self) -> bool:
        """True during an injected stall."""
        return self._stalled.is_set()

    def resolve(self, hello: HelloRequest) -> "Firmware":
        """The endpoint for a connection (this device; a new session forgets the old replies)."""
        return self

    def close(self) -> None:
        """Release the model (ending a stall)."""
        self._closing.set()
        if self.model is not None:
            self.model.close()

    # ------------------------------------------------------------------ commands
    def execute(self, frame: Frame) -> Reply | None:
        """Run one command (the Endpoint's lock is held)."""
        handler = {
            MsgType.HELLO: self._hello,
            MsgType.PING: lambda f: Reply(MsgType.PONG, [f.payload], False),
            MsgType.CONFIGURE: self._configure,
            MsgType.ACQUIRE: self._acquire,
            MsgType.STATUS: self._status,
            MsgType.RESET: self._reset,
            MsgType.BYE: self._bye,
        }.get(frame.type)
        if handler is None:
            raise CommandError(ErrorCode.UNKNOWN_COMMAND, f"unknown message type {frame.type:#x}", cacheable=False)
        return handler(frame)

    def _hello(self, frame: Frame) -> Reply:
        hello = decode_hello_request(frame.payload)
        if hello.session != self.session:
            self.session, self.last_acquire_seq = hello.session, None
            self.cache.clear()
        reply = HelloReply(
            protocol_version=PROTOCOL_VERSION,
            firmware_version=FIRMWARE_VERSION,
            boot_id=self.boot_id,
            info=device_info(self.model, PROTOCOL_VERSION, MAX_BATCH_FRAMES),
            max_payload=self.max_payload,
            max_in_flight=MAX_IN_FLIGHT,
            state=self.state,
            frame_counter=self.model.next_frame_id,
            clock_us=self.model.time_us,
        )
        return Reply(MsgType.HELLO_REPLY, [encode(reply)], False)

    def _status(self, frame: Frame) -> Reply:
        decode_request(StatusRequest, frame.payload)
        reply = StatusReply(
            state=self.state,
            boot_id=self.boot_id,
            dropped_frames=self.dropped_frames,
            frame_counter=self.model.next_frame_id,
            clock_us=self.model.time_us,
        )
        return Reply(MsgType.STATUS_REPLY, [encode(reply)], False)

    def _reset(self, frame: Frame) -> Reply:
        decode_request(ResetRequest, frame.payload)
        self._boot()
        return Reply(MsgType.RESET_REPLY, [encode(ResetReply(boot_id=self.boot_id))], False)

    def _bye(self, frame: Frame) -> Reply:
        decode_request(ByeRequest, frame.payload)
        return Reply(MsgType.BYE_REPLY, [encode(ByeReply())], False)

    def _configure(self, frame: Frame) -> Reply:
        body = decode_request(ConfigureRequest, frame.payload)  # refused before anything changes
        layout = body.layout
        if layout.dmd_shape != self.params.dmd_shape:
            raise CommandError(
                ErrorCode.INVALID_ARGUMENT,
                f"layout: expected a layout for the DMD {self.params.dmd_shape}, got {layout.dmd_shape}",
                False,
            )
        try:
            applied = self.model.configure(
                layout.n_features, body.n_components, body.exposure_us, body.frametime_us, mirrors_per_feature=layout.factor**2
            )
        except ValueError as exc:
            raise CommandError(ErrorCode.INVALID_ARGUMENT, str(exc), False) from None
        if body.frame_counter is not None:  # a host resuming after a reboot restores the counters
            self.model.next_frame_id = body.frame_counter
        if body.clock_us is not None and body.clock_us > self.model.time_us:
            self.model.advance((body.clock_us - self.model.time_us) * 1e-6)
        self.packer = DMDPacker(layout)
        self.state = "configured"
        reply = ConfiguredReply(
            exposure_us=applied.exposure_us,
            frametime_us=applied.frametime_us,
            roi=applied.roi,
            frame_counter=self.model.next_frame_id,
            clock_us=self.model.time_us,
            medium=self.model.medium.kind,
        )
        return Reply(MsgType.CONFIGURED, [encode(reply)])

    def _acquire(self, frame: Frame) -> Reply | None:
        if self.state == "idle":
            raise CommandError(ErrorCode.NOT_CONFIGURED, "ACQUIRE before CONFIGURE (the device is idle)", False)
        head, raw = decode_bulk_request(AcquireHead, frame.payload)
        count, rows, row_bytes, after = head.count, head.rows, head.row_bytes, head.after
        packer = self.packer
        if (rows, row_bytes) != (self.params.dmd_shape[0], packer.stride):
            raise CommandError(
                ErrorCode.INVALID_ARGUMENT,
                f"ACQUIRE: expected frames of {self.params.dmd_shape[0]} rows x {packer.stride} bytes, "
                f"got {count} of {rows} x {row_bytes}",
                False,
            )
        if len(raw) != count * rows * row_bytes:
            raise CommandError(
                ErrorCode.BAD_REQUEST, f"ACQUIRE: {len(raw)} bytes of frames, expected {count * rows * row_bytes}", False
            )
        if after and after != self.last_acquire_seq:
            raise CommandError(
                ErrorCode.OUT_OF_ORDER, f"ACQUIRE seq {frame.seq} follows seq {after}, not yet executed", False
            )
        first = self.model.next_frame_id
        if self.faults.frame_fault("reset", first, count):
            logger.warning("fault injection: reboot before frame %d", self.faults.settings.reset_at_frame)
            self._boot()
            if self.on_boot is not None:
                self.on_boot(self.boot_id)
            return None
        if self.faults.frame_fault("stall", first, count):
            logger.warning("fault injection: stall before frame %d for %g s", first, self.faults.settings.stall_s)
            self._stalled.set()
            self._closing.wait(self.faults.settings.stall_s)
            self._stalled.clear()
            if self._closing.is_set():
                return None
        self.state = "acquiring"
        try:
            reply = self._run(np.frombuffer(raw, dtype=np.uint8).reshape(count, rows, row_bytes))
        finally:
            self.state = "configured"
        self.last_acquire_seq = frame.seq
        return reply

    def _run(self, packed: np.ndarray) -> Reply:
        model, cfg = self.model, self.model.config
        count = packed.shape[0]
        if self.optics:
            acq = model.acquire(self.packer.unpack(packed))
            frames, ids, stamps = acq.frames, acq.frame_ids, acq.timestamps_us
            saturated, device_time_s = acq.saturated_fraction, acq.device_time_s
        else:
            ids = np.arange(model.next_frame_id, model.next_frame_id + count, dtype=np.int64)
            stamps = model.time_us + cfg.frametime_us * np.arange(count)
            dtype = np.dtype(np.float32 if model.ideal else model.camera.dtype)
            nbytes = count * cfg.n_components * dtype.itemsize
            if self._zeros.size < nbytes:  # one block of zeros, kept, serves every call
                self._zeros = np.zeros(nbytes, dtype=np.uint8)
                self._zeros.flags.writeable = False
            frames = self._zeros[:nbytes].view(dtype).reshape(count, cfg.n_components)
            saturated, device_time_s = 0.0, count * cfg.frametime_us * 1e-6
            model.next_frame_id += count
            model.advance(device_time_s)
        lost = self.faults.dropped_camera_frames(int(ids[0]), count)
        delivered = np.setdiff1d(ids, lost)  # what the camera handed over
        if delivered.size != count:
            missing = np.setdiff1d(ids, delivered).tolist()
            self.dropped_frames += len(missing)
            raise CommandError(
                ErrorCode.FRAMES_DROPPED,
                f"the camera delivered {delivered.size} of {count} frames; lost frame ids {missing}",
                frame_ids=missing,
            )
        head = FramesHead(
            count=count,
            n_components=frames.shape[1],
            dtype=frames.dtype.str,
            saturated_fraction=saturated,
            device_time_s=device_time_s,
            frame_counter=model.next_frame_id,
            clock_us=model.time_us,
        )
        frames = np.ascontiguousarray(frames)
        pieces = encode_bulk_head(
            head, ids.astype("<i8").tobytes(), np.asarray(stamps, dtype="<f8").tobytes(), memoryview(frames).cast("B")
        )
        # optics off: the frames are zeros, whose CRC needs no pass over them (as a device's CRC engine)
        known = {} if self.optics else {len(pieces) - 1: crc32_zeros(frames.nbytes)}
        return Reply(MsgType.FRAMES, pieces, known_crcs=known)
