"""Payloads of the wire protocol: JSON for control, a JSON head plus raw bytes for bulk data.

A control payload is UTF-8 JSON (an object). A bulk payload is::

    uint32 LE  n     length of the JSON head
    n bytes    head  UTF-8 JSON object
    rest       raw   arrays, little-endian, C order, back to back as the head describes

Error replies (``MsgType.ERROR``) carry ``{"code": int, "message": str, "details": {...}}``
(:class:`~opu_hal.protocol.schema.ErrorBody`); :func:`error_to_exception` turns them into
the exceptions of :mod:`opu_hal.errors`. The typed bodies of every message are in
:mod:`opu_hal.protocol.schema`, which builds on the codec here.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

from ..errors import (
    DeviceBusyError,
    DeviceError,
    DeviceTimeoutError,
    IncompatibleFirmwareError,
    InvalidArgumentError,
    OPUError,
    ProtocolError,
)

_HEAD_LEN = struct.Struct("<I")


class ErrorCode(IntEnum):
    """Device error codes (docs/protocol.md)."""

    BAD_REQUEST = 1
    UNKNOWN_COMMAND = 2
    NOT_CONFIGURED = 3
    INVALID_ARGUMENT = 4
    BUSY = 5
    FRAMES_DROPPED = 6
    INCOMPATIBLE = 7
    CORRUPT_REQUEST = 8
    UNAUTHORIZED = 9
    TOO_LARGE = 10
    TIMEOUT = 11
    INTERNAL = 12
    OUT_OF_ORDER = 13


def encode_json(obj: dict[str, Any]) -> bytes:
    """A control payload: compact JSON, keys in the order given, ASCII; NaN and infinities refused."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def decode_json(payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Parse a control payload; raises ProtocolError unless it is a JSON object."""
    try:
        obj = json.loads(payload if isinstance(payload, (bytes, bytearray)) else bytes(payload))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"payload: expected a JSON object, got {type(obj).__name__}")
    return obj


def encode_bulk(head: dict[str, Any], *arrays: bytes | memoryview) -> list[bytes | memoryview]:
    """A bulk payload as pieces (head length, head, raw arrays); nothing large is copied."""
    text = encode_json(head)
    return [_HEAD_LEN.pack(len(text)), text, *arrays]


def split_bulk(payload: bytes | bytearray | memoryview) -> tuple[bytes, memoryview]:
    """(head JSON bytes, raw bytes) of a bulk payload; raises ProtocolError if the head overruns it."""
    if len(payload) < _HEAD_LEN.size:
        raise ProtocolError(f"bulk payload of {len(payload)} bytes is shorter than its head length field")
    (n,) = _HEAD_LEN.unpack_from(payload)
    if n > len(payload) - _HEAD_LEN.size:
        raise ProtocolError(f"bulk head of {n} bytes overruns the {len(payload)}-byte payload")
    view = memoryview(payload)
    return bytes(view[_HEAD_LEN.size : _HEAD_LEN.size + n]), view[_HEAD_LEN.size + n :]


def decode_bulk(payload: bytes | bytearray | memoryview) -> tuple[dict[str, Any], memoryview]:
    """(head, raw bytes) of a bulk payload; raises ProtocolError if malformed."""
    head, raw = split_bulk(payload)
    return decode_json(head), raw


def error_payload(code: ErrorCode, message: str, **details: Any) -> bytes:
    """The payload of an ERROR reply (an :class:`~opu_hal.protocol.schema.ErrorBody`)."""
    from .schema import ErrorBody, encode  # the schema builds on this module

    return encode(ErrorBody(code=int(code), message=message, details=details))


def error_to_exception(payload: bytes | bytearray | memoryview) -> OPUError:
    """The :mod:`opu_hal.errors` exception an ERROR reply stands for (ProtocolError if malformed)."""
    from .schema import ErrorBody, decode_reply  # the schema builds on this module

    try:
        body = decode_reply(ErrorBody, payload)
    except ProtocolError as exc:
        return exc
    code, message = body.code, body.message
    text = f"device error {code}"
    try:
        text += f" ({ErrorCode(code).name})"
    except ValueError:
        pass
    text += f": {message}"
    if code == ErrorCode.BUSY:
        return DeviceBusyError(text)
    if code == ErrorCode.INCOMPATIBLE:
        return IncompatibleFirmwareError(text)
    if code == ErrorCode.TIMEOUT:
        return DeviceTimeoutError(text)
    if code in (ErrorCode.BAD_REQUEST, ErrorCode.CORRUPT_REQUEST):
        return ProtocolError(text)
    error = InvalidArgumentError(text, code) if code == ErrorCode.INVALID_ARGUMENT else DeviceError(text, code)
    error.details = dict(body.details)
    return error
