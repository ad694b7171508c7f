"""A DMD and a camera inside OPU firmware, driven over the opu-hal wire protocol (docs/protocol.md).

The firmware runs its DMD and camera together: ACQUIRE shows bit-packed DMD frames and
returns the camera frame each one triggered. :class:`ProtocolLink` holds the one session
with the firmware that a :class:`ProtocolDMD` and a :class:`ProtocolCamera` share: the DMD
uploads and runs sequences, and the frames its trigger out produced are handed to the
camera when the camera is armed for hardware (``RISING_EDGE``) triggers. A software
trigger of the camera exposes one frame of what the DMD shows.

The firmware reads its camera as full-width sensor rows centred on the sensor; the camera
asks for the fewest such rows that cover its ROI and crops the ROI from them. Its optics
are defined per *feature*, so the DMD passes the firmware the layout it was given
(:meth:`DMD.set_layout`); without one, every mirror is a feature.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable

import numpy as np

from ..errors import DeviceError, ProtocolError
from ..layout import DMDLayout
from ..protocol.client import Hello, ProtocolClient, Request
from ..protocol.frames import MsgType
from ..protocol.messages import ErrorCode
from ..protocol.schema import (
    HEAD_ROOM,
    AcquireHead,
    ConfiguredReply,
    ConfigureRequest,
    FramesHead,
    decode_bulk_reply,
    decode_reply,
    encode,
    encode_bulk_head,
)
from ..settings import DeviceInfo
from ..transport import Transport
from ..url import WireOptions, resolve_url
from .camera import Camera, CameraLimits, CameraSettings, CapturedFrame, PixelFormat
from .common import DeviceIdentity, TriggerMode, TriggerType
from .dmd import DMD, DMDLimits, DMDSettings, packed_shape

logger = logging.getLogger(__name__)


class ProtocolLink:
    """One session with OPU firmware, shared by its DMD and camera; opened by the first user.

    ``connect`` makes the transport; ``release`` runs after the link closes (stops an
    in-process firmware). ``timeout_s``: seconds before a request is retried; ``retries``:
    times it is re-sent; ``token``: the shared secret of an ``opu-hal serve`` endpoint;
    ``chunk_frames``: most frames per ACQUIRE (caps the DMD's sequence length).
    """

    def __init__(
        self,
        connect: Callable[[], Transport],
        release: Callable[[], None] | None = None,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        token: str | None = None,
        chunk_frames: int | None = None,
    ) -> None:
        self._connect, self._release = connect, release
        self.timeout_s, self.retries, self.token, self.chunk_frames = timeout_s, retries, token, chunk_frames
        self.client: ProtocolClient | None = None
        self._users = 0
        self.layout: DMDLayout | None = None
        self.readout_rows: int | None = None
        self.exposure_us: float | None = None
        self.picture_time_us: float | None = None
        self.min_frametime_us: float | None = None
        self._dirty = True
        self.displayed: np.ndarray | None = None  # packed frame the mirrors show
        self.sink: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 10.0) -> "ProtocolLink":
        """A link to the firmware behind a wire URL: ``sim://?...`` (firmware in this process),
        ``socket://HOST:PORT[?token=...]``, a serial port, or a registered scheme with a link.

        The query keys are those of the URL table (:mod:`opu_hal.url`), with the same meaning
        as for :class:`~opu_hal.OPU`: ``retries``, ``chunk_frames``, ``timeout_s`` (seconds;
        wins over the ``timeout_s`` argument), ``token``, ``baudrate``, emulator parameters.
        """
        try:
            spec = resolve_url(url)
            link = spec.make_link()
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from exc
        wire = spec.get(WireOptions)
        return cls(
            link.connect,
            link.release,
            timeout_s=timeout_s if wire.timeout_s is None else wire.timeout_s,
            retries=wire.retries,
            token=spec.value("token"),
            chunk_frames=wire.chunk_frames,
        )

    # ------------------------------------------------------------------ life cycle
    @property
    def hello(self) -> Hello:
        """The firmware's answer to the handshake."""
        if self.client is None:
            raise RuntimeError("the firmware link is not open")
        return self.client.hello

    @property
    def info(self) -> DeviceInfo:
        """What the firmware said about the device."""
        return self.hello.info

    def attach(self) -> None:
        """Open the session for one more user (the first one connects)."""
        if self._users == 0:
            client = ProtocolClient(self._connect(), timeout_s=self.timeout_s, retries=self.retries, token=self.token)
            try:
                client.connect()
            except BaseException:
                client.transport.close()
                if self._release is not None:
                    self._release()
                raise
            self.client, self._dirty = client, True
        self._users += 1

    def detach(self) -> None:
        """One user less; the last one closes the session."""
        self._users -= 1
        if self._users == 0 and self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None
                if self._release is not None:
                    self._release()

    # ------------------------------------------------------------------ configuration
    def set(self, **state: Any) -> None:
        """Change part of the combined configuration; it is sent before the next acquisition."""
        for key, value in state.items():
            if getattr(self, key) != value:
                setattr(self, key, value)
                self._dirty = True

    def default_layout(self) -> DMDLayout:
        """Every mirror a feature."""
        shape = self.info.dmd_shape
        return DMDLayout(dmd_shape=shape, n_features=shape[0] * shape[1], grid_shape=shape, factor=1, offset=(0, 0))

    def configure(self) -> None:
        """Send the configuration if it changed: first at the shortest frametime (to learn it), then at the DMD's."""
        if not self._dirty:
            return
        layout = self.layout or self.default_layout()
        rows = self.readout_rows or self.info.camera_shape[0]
        body = ConfigureRequest(
            layout=layout, n_components=rows * self.info.camera_shape[1], exposure_us=self.exposure_us, frametime_us=None
        )
        reply = self._configure(body)
        self.min_frametime_us = reply.frametime_us
        if self.picture_time_us is not None and self.picture_time_us > self.min_frametime_us:
            self._configure(body.model_copy(update={"frametime_us": self.picture_time_us}))
        self._dirty = False

    def _configure(self, body: ConfigureRequest) -> ConfiguredReply:
        return decode_reply(ConfiguredReply, self.client.request(Request(MsgType.CONFIGURE, [encode(body)])).payload)

    # ------------------------------------------------------------------ acquisition
    def show(self, packed: np.ndarray) -> None:
        """Show packed frames (F, rows, bytes per row) and hand the camera frames they trigger to ``sink``."""
        self.configure()
        head = AcquireHead(count=packed.shape[0], rows=packed.shape[1], row_bytes=packed.shape[2])
        request = Request(MsgType.ACQUIRE, encode_bulk_head(head, memoryview(np.ascontiguousarray(packed)).cast("B")))
        self.displayed = packed[-1:].copy()
        try:
            reply = self.client.request(request)
        except DeviceError as exc:
            if exc.code != ErrorCode.FRAMES_DROPPED:
                raise
            logger.warning("firmware camera dropped frames: %s", exc)
            return  # the camera's frame counter will show the gap
        frames, ids, stamps = self._parse(reply.payload, packed.shape[0])
        if self.sink is not None:
            self.sink(frames, ids, stamps)

    def _parse(self, payload: bytes, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        head, raw = decode_bulk_reply(FramesHead, payload)
        n, dtype = head.n_components, head.numpy_dtype
        if head.count != count or len(raw) != head.raw_bytes:
            raise ProtocolError(f"FRAMES: expected {count} frames, got {head.count} ({len(raw)} bytes)")
        ids = np.frombuffer(raw, dtype="<i8", count=count).astype(np.int64)
        stamps = np.frombuffer(raw, dtype="<f8", count=count, offset=8 * count).astype(np.float64)
        frames = np.frombuffer(raw, dtype=dtype, offset=16 * count).reshape(count, n).astype(dtype.newbyteorder("="))
        return frames, ids, stamps

    def max_frames(self) -> int:
        """Frames one ACQUIRE can carry (the DMD's 'on-board memory')."""
        rows, stride = packed_shape(self.info.dmd_shape)
        fit = (self.hello.max_payload - HEAD_ROOM) // (rows * stride)
        return max(1, min(fit, self.info.limits.max_batch_frames, self.chunk_frames or fit))


class ProtocolDMD(DMD):
    """The DMD of OPU firmware. ``link``: a :class:`ProtocolLink` (shared with the camera) or a URL."""

    def __init__(self, link: ProtocolLink | str, settings: DMDSettings | dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.link = ProtocolLink.from_url(link) if isinstance(link, str) else link
        self._sequence: np.ndarray | None = None

    def _do_open(self) -> DeviceIdentity:
        self.link.attach()
        info = self.link.info
        return DeviceIdentity(vendor="opu-hal", model=f"{info.model} DMD", serial=info.serial, firmware_version=info.firmware_version)

    def _do_close(self) -> None:
        self._sequence = None
        self.link.detach()

    def _do_limits(self) -> DMDLimits:
        return DMDLimits(
            shape=self.link.info.dmd_shape,
            picture_time_us=(1.0, 1e7),
            max_frames=self.link.max_frames(),
            continuous=False,
            trigger_types=(TriggerType.SOFTWARE,),
            trigger_modes=(TriggerMode.START,),
        )

    def _check_picture_time(self, picture_time_us: float) -> None:
        shortest = self.link.min_frametime_us
        if shortest is not None and picture_time_us < shortest:
            raise ValueError(
                f"picture_time_us: expected {shortest:g} to 1e+07 us (the camera's exposure and readout need "
                f"{shortest:g} us), got {picture_time_us!r}"
            )

    def _do_apply(self, settings: DMDSettings, changed: set[str]) -> None:
        self._check_picture_time(settings.picture_time_us)
        self.link.set(picture_time_us=settings.picture_time_us)

    def _do_set_layout(self, layout: DMDLayout) -> None:
        self.link.set(layout=layout)

    def _do_upload(self, packed: np.ndarray) -> None:
        self._sequence = packed

    def _do_run(self, continuous: bool) -> None:
        self.link.configure()
        self._check_picture_time(self.settings.picture_time_us)
        link = self.link
        sink = link.sink
        if not self.settings.trigger_out:
            link.sink = None  # no pulse out: the camera sees no trigger
        try:
            link.show(self._sequence)
        finally:
            link.sink = sink

    def _do_stop(self) -> None:
        """The firmware shows a sequence once and stops by itself."""


class ProtocolCamera(Camera):
    """The camera of OPU firmware. ``link``: a :class:`ProtocolLink` (shared with the DMD) or a URL."""

    def __init__(self, link: ProtocolLink | str, settings: CameraSettings | dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.link = ProtocolLink.from_url(link) if isinstance(link, str) else link
        self._queue: deque[CapturedFrame] = deque()
        self._remaining: int | None = None

    # ------------------------------------------------------------------ life cycle and settings
    def _do_open(self) -> DeviceIdentity:
        self.link.attach()
        info = self.link.info
        return DeviceIdentity(
            vendor="opu-hal", model=f"{info.model} camera", serial=info.serial, firmware_version=info.firmware_version
        )

    def _do_close(self) -> None:
        self.link.sink = None
        self.link.detach()

    def _pixel_format(self) -> PixelFormat:
        bits = self.link.info.bit_depth
        return PixelFormat.FLOAT32 if bits == 0 else PixelFormat(f"Mono{bits}")

    def _do_limits(self) -> CameraLimits:
        info = self.link.info
        return CameraLimits(
            sensor_shape=info.camera_shape,
            exposure_us=(info.limits.min_exposure_us, info.limits.max_exposure_us),
            gain_db=(0.0, 0.0),
            max_binning=1,
            pixel_formats=(self._pixel_format(),),
            trigger_types=(TriggerType.SOFTWARE, TriggerType.RISING_EDGE),
            trigger_modes=(TriggerMode.ONCE,),
        )

    def _do_read_settings(self) -> CameraSettings:
        return CameraSettings(exposure_us=self.link.info.default_exposure_us, pixel_format=self._pixel_format())

    def readout(self, settings: CameraSettings) -> tuple[int, int]:
        """(first row, rows) the firmware reads for these settings: centred full rows covering the ROI."""
        height = self.limits.sensor_shape[0]
        roi = settings.roi
        if roi is None:
            return 0, height
        for rows in range(roi.height, height + 1):
            first = (height - rows) // 2
            if first <= roi.y and roi.y + roi.height <= first + rows:
                return first, rows
        return 0, height

    def _do_apply(self, settings: CameraSettings, changed: set[str]) -> None:
        self.link.set(exposure_us=settings.exposure_us, readout_rows=self.readout(settings)[1])

    @property
    def nominal_response(self) -> tuple[float, float] | None:
        """The firmware's factory calibration: dark level (DN) and DN per unit intensity per us."""
        info = self.link.info
        return info.dark_level_dn, info.dn_per_intensity_per_us

    def _do_min_frame_period_us(self) -> float:
        self.link.configure()
        return self.link.min_frametime_us

    # ------------------------------------------------------------------ acquisition
    def _do_arm(self, n_frames: int | None) -> None:
        self._queue.clear()
        self._remaining = n_frames
        if self.settings.trigger_type is TriggerType.RISING_EDGE:
            self.link.sink = self._receive

    def _do_disarm(self) -> None:
        self.link.sink = None
        self._queue.clear()

    def _do_trigger(self) -> None:
        link = self.link
        picture = link.displayed
        if picture is None:
            picture = np.zeros((1, *packed_shape(link.info.dmd_shape)), dtype=np.uint8)
        sink, link.sink = link.sink, self._receive
        try:
            link.show(picture)
        finally:
            link.sink = sink

    def _receive(self, frames: np.ndarray, ids: np.ndarray, stamps: np.ndarray) -> None:
        first, rows = self.readout(self.settings)
        roi = self.roi
        width = self.limits.sensor_shape[1]
        now = self.now_s()
        for frame, frame_id, stamp in zip(frames, ids, stamps):
            if self._remaining is not None:
                if self._remaining == 0:
                    return
                self._remaining -= 1
            image = frame.reshape(rows, width)[roi.y - first : roi.y - first + roi.height, roi.x : roi.x + roi.width]
            self._queue.append(CapturedFrame(np.ascontiguousarray(image), int(frame_id), float(stamp), now))

    def _do_grab(self, timeout_s: float) -> CapturedFrame | None:
        # The firmware hands over a sequence's frames when it ends: none queued means none coming.
        return self._queue.popleft() if self._queue else None

