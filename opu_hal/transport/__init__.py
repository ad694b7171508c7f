"""Byte streams to devices: serial ports, TCP and an in-process loopback pair."""

from .base import Link, Transport, TransportError
from .loopback import LoopbackTransport, loopback_pair
from .serial import SerialTransport
from .tcp import TCPTransport, split_host_port

__all__ = [
    "Link",
    "LoopbackTransport",
    "SerialTransport",
    "TCPTransport",
    "Transport",
    "TransportError",
    "loopback_pair",
    "split_host_port",
]
