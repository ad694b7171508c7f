"""One typed schema for every message body of the wire protocol (docs/protocol.md, section 3).

Every body the host or a device sends is a pydantic model here, each field checked for its
type *and* its range; peers build bodies from these models and read bodies through them,
so no message is a dict built by hand. The shared protocol constants live here too.

Encoding (:func:`encode`, :func:`encode_bulk_head`) is deterministic: the model's fields
in their declared order, compact JSON separators, ASCII, no NaN or infinity. The golden
frames of docs/protocol.md section 7 depend on it; section 3.1 lists the ranges.

Decoding is strict (JSON types as declared: an integer field refuses ``5.0`` and ``"5"``,
a boolean refuses ``1``):

- host side, :func:`decode_reply` / :func:`decode_bulk_reply`: a malformed reply raises
  :class:`~opu_hal.errors.ProtocolError` naming the message and the field;
- device side, :func:`decode_request` / :func:`decode_bulk_request`: a malformed request
  raises :class:`~opu_hal.protocol.messages.CommandError`, which the device answers
  with ``ERROR BAD_REQUEST`` (wrong type, missing or unknown field, not JSON) or
  ``ERROR INVALID_ARGUMENT`` (a value out of its range), uncached and changing nothing.

Unknown keys: requests other than HELLO refuse them; HELLO and replies ignore them, so
that a later minor version may add keys. Messages whose payload is not JSON: PING and
PONG carry opaque bytes (the device echoes the PING's payload unchanged), KEEPALIVE an
empty payload (:data:`KEEPALIVE_PAYLOAD`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from ..errors import CommandError, ProtocolError
from ..layout import DMDLayout
from ..limits import (
    MAX_BATCH_FRAMES,
    MAX_EXPOSURE_US,
    MAX_FRAMETIME_US,
    MIN_EXPOSURE_US,
)
from ..settings import DeviceInfo
from .frames import PROTOCOL_MAJOR, PROTOCOL_MINOR
from .messages import ErrorCode, encode_bulk, encode_json, split_bulk

#: The protocol version a peer announces ("major.minor").
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
#: Requests a device accepts outstanding at once (announced in HELLO_REPLY).
MAX_IN_FLIGHT = 4
#: Bytes of a bulk payload kept for its JSON head when a host sizes its chunks.
HEAD_ROOM = 4096
#: The payload of a KEEPALIVE frame: empty (not JSON).
KEEPALIVE_PAYLOAD = b""

_UINT32_MAX = 2**32 - 1
_INT32_MAX = 2**31 - 1
_INT63_MAX = 2**63 - 1

# ---------------------------------------------------------------------------- field types
#: A sequence number: uint32.
Seq = Annotated[int, Field(ge=0, le=_UINT32_MAX)]
#: The id the device gives its next frame: 0 to 2**63 - 1.
FrameCounter = Annotated[int, Field(ge=0, le=_INT63_MAX)]
#: The device clock (us): finite, >= 0.
ClockUs = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: Frames in one message: 1 to MAX_BATCH_FRAMES.
FrameCount = Annotated[int, Field(ge=1, le=MAX_BATCH_FRAMES)]
#: A positive size (rows, bytes, outputs): 1 to 2**31 - 1.
Size = Annotated[int, Field(ge=1, le=_INT32_MAX)]
#: A camera exposure (us), within MIN_EXPOSURE_US to MAX_EXPOSURE_US.
ExposureUs = Annotated[float, Field(ge=MIN_EXPOSURE_US, le=MAX_EXPOSURE_US, allow_inf_nan=False)]
#: A frametime (us): above 0, at most MAX_FRAMETIME_US.
FrametimeUs = Annotated[float, Field(gt=0, le=MAX_FRAMETIME_US, allow_inf_nan=False)]
#: A protocol version number (the frame header holds the major one in a byte).
VersionNumber = Annotated[int, Field(ge=0, le=255)]
#: A boot or session id: 1 to 64 letters, digits, ``_ . : -``.
Identifier = Annotated[str, Field(pattern=r"^[0-9A-Za-z_.:-]{1,64}$")]
#: A device state.
DeviceState = Literal["idle", "configured", "acquiring"]
#: A numpy dtype string of camera pixels: byte order, kind (unsigned, signed, float), size.
PixelDtype = Annotated[str, Field(pattern=r"^(\|[ui]1|[<>](?:[ui][248]|f[248]))$")]


class Body(BaseModel):
    """Base of every JSON message body; ``MESSAGE`` names it in errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    MESSAGE: ClassVar[str] = "message"
    #: Optional fields left out of the JSON when None (rather than sent as null).
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()


class ReplyBody(Body):
    """Base of reply bodies: unknown keys (from a later minor version) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# ---------------------------------------------------------------------------- HELLO
class HelloRequest(Body):
    """HELLO: the host greets the device. ``keepalive_s``: interval of KEEPALIVE frames it asks for (s)."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # a later minor version may add keys
    MESSAGE: ClassVar[str] = "HELLO"
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"session", "keepalive_s", "token"})

    protocol: tuple[VersionNumber, VersionNumber] = Field(description="[major, minor] the host speaks")
    session: Identifier | None = Field(None, description="the host's session id (a new one clears the reply cache)")
    keepalive_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None
    token: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(None, description="opu-hal serve's secret")


class ProtocolProbe(Body):
    """The part of a HELLO that must be understood by every version: ``protocol``."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    MESSAGE: ClassVar[str] = "HELLO"

    protocol: tuple[VersionNumber, VersionNumber]


class HelloReply(ReplyBody):
    """HELLO_REPLY: who the device is. ``max_payload`` in bytes, ``clock_us`` in us."""

    MESSAGE: ClassVar[str] = "HELLO_REPLY"

    protocol_version: Annotated[str, Field(pattern=r"^[0-9]{1,3}\.[0-9]{1,3}$")]
    firmware_version: Annotated[str, Field(min_length=1, max_length=64)]
    boot_id: Identifier
    info: DeviceInfo
    max_payload: Annotated[int, Field(ge=1, le=_UINT32_MAX)]
    max_in_flight: Annotated[int, Field(ge=1, le=256)]
    state: DeviceState
    frame_counter: FrameCounter
    clock_us: ClockUs

    @field_validator("info")
    @classmethod
    def _sane_info(cls, info: DeviceInfo) -> DeviceInfo:
        if min(info.dmd_shape + info.camera_shape) < 1:
            raise ValueError(f"expected positive dmd_shape and camera_shape, got {info.dmd_shape}, {info.camera_shape}")
        if not 0 <= info.bit_depth <= 32:
            raise ValueError(f"bit_depth: expected 0 to 32, got {info.bit_depth}")
        numbers = (info.default_exposure_us, info.dark_level_dn, info.dark_current_dn_per_us, info.dn_per_intensity_per_us)
        if not all(math.isfinite(x) for x in numbers):
            raise ValueError(f"expected finite calibration numbers, got {numbers}")
        limits = info.limits
        if min(limits.max_n_components, limits.max_n_features, limits.max_batch_frames) < 1:
            raise ValueError(f"limits: expected positive maxima, got {limits}")
        if not 0 < limits.min_exposure_us <= limits.max_exposure_us < math.inf:
            raise ValueError(f"limits: expected 0 < min_exposure_us <= max_exposure_us, got {limits}")
        return info


class VersionProbe(ReplyBody):
    """The part of a HELLO_REPLY read first: its format depends on ``protocol_version`` ("" if missing)."""

    MESSAGE: ClassVar[str] = "HELLO_REPLY"

    protocol_version: Annotated[str, Field(max_length=64)] = ""
    firmware_version: Annotated[str, Field(max_length=64)] = "unknown"


# ---------------------------------------------------------------------------- CONFIGURE
class ConfigureRequest(Body):
    """CONFIGURE: layout, outputs and timing (us); ``frame_counter``/``clock_us`` restore the counters."""

    MESSAGE: ClassVar[str] = "CONFIGURE"
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"frame_counter", "clock_us"})

    layout: DMDLayout
    n_components: Size
    exposure_us: ExposureUs | None = Field(None, description="camera exposure (us); None (null): the device's default")
    frametime_us: FrametimeUs | None = Field(None, description="time per frame (us); None (null): the shortest possible")
    frame_counter: FrameCounter | None = None
    clock_us: ClockUs | None = None

    @field_validator("layout")
    @classmethod
    def _layout_fits(cls, layout: DMDLayout) -> DMDLayout:
        (rows, cols), (grid_rows, grid_cols), factor = layout.dmd_shape, layout.grid_shape, layout.factor
        if min(rows, cols, grid_rows, grid_cols, factor, layout.n_features) < 1 or min(layout.offset) < 0:
            raise ValueError(f"expected positive shapes, n_features and factor and a non-negative offset, got {layout}")
        if layout.n_features > grid_rows * grid_cols:
            raise ValueError(f"n_features: expected at most the {grid_rows * grid_cols} cells of the grid, got {layout.n_features}")
        if layout.offset[0] + grid_rows * factor > rows or layout.offset[1] + grid_cols * factor > cols:
            raise ValueError(f"expected a grid that fits the DMD {layout.dmd_shape}, got {layout}")
        return layout


class ConfiguredReply(ReplyBody):
    """CONFIGURED: the applied timing (us), the camera ROI [y0, x0, rows, columns] and the counters.

    ``medium``: an emulator's transmission-matrix model for this configuration; left out by hardware.
    """

    MESSAGE: ClassVar[str] = "CONFIGURED"
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"medium"})

    exposure_us: ExposureUs
    frametime_us: FrametimeUs
    roi: tuple[
        Annotated[int, Field(ge=0, le=_INT32_MAX)], Annotated[int, Field(ge=0, le=_INT32_MAX)], Size, Size
    ]
    frame_counter: FrameCounter
    clock_us: ClockUs
    medium: Literal["dense", "structured"] | None = None


# ---------------------------------------------------------------------------- ACQUIRE / FRAMES
class AcquireHead(Body):
    """ACQUIRE head: ``count`` DMD frames of ``rows`` rows of ``row_bytes`` packed bytes follow.

    ``after``: seq of the previous ACQUIRE of the same device call (0: the first);
    ``more``: further chunks of the call follow.
    """

    MESSAGE: ClassVar[str] = "ACQUIRE"

    count: FrameCount
    rows: Size
    row_bytes: Size
    after: Seq = 0
    more: bool = False


class FramesHead(ReplyBody):
    """FRAMES head: ``count`` frames of ``n_components`` pixels of ``dtype`` follow, after ids and timestamps.

    ``saturated_fraction`` in [0, 1], ``device_time_s`` (s) and ``clock_us`` (us) finite, >= 0.
    """

    MESSAGE: ClassVar[str] = "FRAMES"

    count: FrameCount
    n_components: Size
    dtype: PixelDtype
    saturated_fraction: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    device_time_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    frame_counter: FrameCounter
    clock_us: ClockUs

    @property
    def numpy_dtype(self) -> np.dtype:
        """The pixels' dtype."""
        return np.dtype(self.dtype)

    @property
    def raw_bytes(self) -> int:
        """Bytes of the raw part: frame ids (int64), timestamps (float64) and frames."""
        return self.count * (16 + self.n_components * self.numpy_dtype.itemsize)


# ---------------------------------------------------------------------------- STATUS, RESET, BYE, BOOT
class StatusRequest(Body):
    """STATUS: ``{}``."""

    MESSAGE: ClassVar[str] = "STATUS"


class StatusReply(ReplyBody):
    """STATUS_REPLY: state, boot id, frames the camera lost so far, and the counters."""

    MESSAGE: ClassVar[str] = "STATUS_REPLY"

    state: DeviceState
    boot_id: Identifier
    dropped_frames: Annotated[int, Field(ge=0, le=_INT63_MAX)]
    frame_counter: FrameCounter
    clock_us: ClockUs


class ResetRequest(Body):
    """RESET: ``{}``; the device reboots."""

    MESSAGE: ClassVar[str] = "RESET"


class ResetReply(ReplyBody):
    """RESET_REPLY: the new boot id."""

    MESSAGE: ClassVar[str] = "RESET_REPLY"

    boot_id: Identifier


class ByeRequest(Body):
    """BYE: ``{}``; the host is leaving."""

    MESSAGE: ClassVar[str] = "BYE"


class ByeReply(ReplyBody):
    """BYE_REPLY: ``{}``."""

    MESSAGE: ClassVar[str] = "BYE_REPLY"


class BootNotice(ReplyBody):
    """BOOT (unsolicited, seq 0): the device rebooted."""

    MESSAGE: ClassVar[str] = "BOOT"

    boot_id: Identifier


class ErrorBody(ReplyBody):
    """ERROR: ``code`` (an :class:`ErrorCode`; others are tolerated), ``message``, ``details``."""

    MESSAGE: ClassVar[str] = "ERROR"

    code: Annotated[int, Field(ge=1, le=65535)]
    message: Annotated[str, Field(max_length=65536)]
    details: dict[str, JsonValue] = Field(default_factory=dict)


# ---------------------------------------------------------------------------- encoding
def body_json(body: Body) -> dict[str, Any]:
    """The JSON object of a body: declared field order, None-valued optional fields left out."""
    data = body.model_dump(mode="json")
    for name in body.OMIT_IF_NONE:
        if data[name] is None:
            del data[name]
    return data


def encode(body: Body) -> bytes:
    """The control payload of a body (deterministic compact JSON)."""
    return encode_json(body_json(body))


def encode_bulk_head(head: Body, *arrays: bytes | memoryview) -> list[bytes | memoryview]:
    """A bulk payload as pieces: head length, the head's JSON, the raw arrays (not copied)."""
    return encode_bulk(body_json(head), *arrays)


# ---------------------------------------------------------------------------- decoding
B = TypeVar("B", bound=Body)

#: Error types of values out of their range (the rest: wrong types, missing or unknown fields).
_RANGE_ERRORS = frozenset({
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number",
    "string_pattern_mismatch", "string_too_long", "string_too_short", "literal_error", "value_error",
})


def _describe(cls: type[Body], exc: ValidationError) -> str:
    return f"{cls.MESSAGE}: " + "; ".join(_describe_one(error) for error in exc.errors(include_url=False))


def _describe_one(error: ErrorDetails) -> str:
    if error["type"] == "json_invalid":
        return f"payload is not valid JSON ({error['msg']})"
    if error["type"] in ("model_type", "model_attributes_type"):
        return f"payload: expected a JSON object, got {_short(error['input'])}"
    field = ".".join(str(part) for part in error["loc"]) or "payload"
    text = f"{field}: {error['msg']}"
    if error["type"] != "missing":
        text += f", got {_short(error['input'])}"
    return text


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validate(cls: type[B], text: bytes | bytearray | memoryview) -> B:
    return cls.model_validate_json(text if isinstance(text, (bytes, bytearray)) else bytes(text), strict=True)


def decode_reply(cls: type[B], payload: bytes | bytearray | memoryview) -> B:
    """A reply body from its control payload (host side); raises ProtocolError naming the message and field."""
    try:
        return _validate(cls, payload)
    except ValidationError as exc:
        raise ProtocolError(f"malformed reply: {_describe(cls, exc)}") from None


def decode_bulk_reply(cls: type[B], payload: bytes | bytearray | memoryview) -> tuple[B, memoryview]:
    """(head, raw bytes) of a bulk reply (host side); raises ProtocolError naming the message and field."""
    try:
        head, raw = split_bulk(payload)
    except ProtocolError as exc:
        raise ProtocolError(f"malformed reply: {cls.MESSAGE}: {exc}") from None
    return decode_reply(cls, head), raw


def decode_request(cls: type[B], payload: bytes | bytearray | memoryview) -> B:
    """A request body from its control payload (device side).

    Raises CommandError (uncached): ``INVALID_ARGUMENT`` if only values are out of range,
    else ``BAD_REQUEST``; the message names the request and the fields.
    """
    try:
        return _validate(cls, payload)
    except ValidationError as exc:
        out_of_range = all(error["type"] in _RANGE_ERRORS for error in exc.errors())
        code = ErrorCode.INVALID_ARGUMENT if out_of_range else ErrorCode.BAD_REQUEST
        raise CommandError(code, f"malformed request: {_describe(cls, exc)}", cacheable=False) from None


def decode_bulk_request(cls: type[B], payload: bytes | bytearray | memoryview) -> tuple[B, memoryview]:
    """(head, raw bytes) of a bulk request (device side); raises CommandError as :func:`decode_request`."""
    try:
        head, raw = split_bulk(payload)
    except ProtocolError as exc:
        raise CommandError(ErrorCode.BAD_REQUEST, f"malformed request: {cls.MESSAGE}: {exc}", cacheable=False) from None
    return decode_request(cls, head), raw


def decode_hello_request(payload: bytes | bytearray | memoryview) -> HelloRequest:
    """A HELLO (device side): its ``protocol`` first (``INCOMPATIBLE`` for another major), then the rest."""
    asked = decode_request(ProtocolProbe, payload).protocol
    if asked[0] != PROTOCOL_MAJOR:
        raise CommandError(
            ErrorCode.INCOMPATIBLE,
            f"protocol {list(asked)} not supported; this device speaks {PROTOCOL_VERSION}",
            cacheable=False,
        )
    return decode_request(HelloRequest, payload)

