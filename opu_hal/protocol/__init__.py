"""The opu-hal wire protocol (docs/protocol.md): frames, payloads, typed message bodies
(:mod:`~opu_hal.protocol.schema`), host client and device server."""

from .client import DeviceResetError, Hello, ProtocolClient, Request
from .dmd import DMDPacker
from .frames import (
    DEFAULT_MAX_PAYLOAD,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    CorruptFrameError,
    Frame,
    FrameDecoder,
    MsgType,
    encode_frame,
    frame_bytes,
)
from .messages import ErrorCode, InvalidArgumentError, decode_bulk, decode_json, encode_bulk, encode_json
from .device_side import CommandError, Endpoint, Reply, ServerLink

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "CommandError",
    "CorruptFrameError",
    "DMDPacker",
    "DeviceResetError",
    "Endpoint",
    "ErrorCode",
    "Frame",
    "FrameDecoder",
    "Hello",
    "InvalidArgumentError",
    "MsgType",
    "ProtocolClient",
    "Reply",
    "Request",
    "ServerLink",
    "decode_bulk",
    "decode_json",
    "encode_bulk",
    "encode_json",
    "encode_frame",
    "frame_bytes",
]
