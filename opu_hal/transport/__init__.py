"""Byte streams to devices: serial ports, TCP (plain or TLS) and an in-process loopback pair."""

from .base import Link, Transport, TransportError
from .loopback import LoopbackTransport, loopback_pair
from .serial import SerialTransport
from .tcp import TCPTransport, split_host_port
from .tls import TLSTransport, client_context, server_context

__all__ = [
    "Link",
    "LoopbackTransport",
    "SerialTransport",
    "TCPTransport",
    "TLSTransport",
    "Transport",
    "TransportError",
    "client_context",
    "loopback_pair",
    "server_context",
    "split_host_port",
]
