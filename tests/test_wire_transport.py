"""Transports: bytes arrive unchanged, every wait ends on time, a dead link raises TransportError."""

from __future__ import annotations

import os
import socket
import threading
import time
import tty

import pytest

from opu_hal.transport import SerialTransport, TCPTransport, TransportError, loopback_pair, split_host_port


def read_exactly(transport, n: int, timeout_s: float = 5.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += transport.read(n - len(out), 0.1)
    return out


def assert_read_times_out(transport, timeout_s: float = 0.15) -> None:
    t0 = time.monotonic()
    assert transport.read(10, timeout_s) == b""
    assert timeout_s * 0.9 <= time.monotonic() - t0 < timeout_s + 0.5


@pytest.fixture
def tcp_pair():
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()[:2]
    client = TCPTransport(host, port)
    client.open(2.0)
    conn, _ = listener.accept()
    server = TCPTransport(host, port, sock=conn)
    yield client, server
    client.close()
    server.close()
    listener.close()


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    port = SerialTransport(os.ttyname(slave))
    port.open(2.0)
    yield port, master
    port.close()
    os.close(slave)
    os.close(master)


def test_loopback_carries_bytes_both_ways_and_times_out():
    host, device = loopback_pair()
    host.write(b"hello")
    device.write(memoryview(b"world"))
    assert read_exactly(device, 5) == b"hello"
    assert_read_times_out(device)
    assert read_exactly(host, 2) == b"wo" and read_exactly(host, 3) == b"rld"
    assert_read_times_out(host)


def test_loopback_close_ends_the_peer():
    host, device = loopback_pair()
    device.close()
    with pytest.raises(TransportError):
        host.read(1, 1.0)
    with pytest.raises(TransportError):
        host.write(b"x")


def test_tcp_carries_a_large_message_and_times_out(tcp_pair):
    client, server = tcp_pair
    data = os.urandom(3_000_000)
    sender = threading.Thread(target=client.write, args=(data,))
    sender.start()
    assert read_exactly(server, len(data)) == data
    sender.join()
    assert_read_times_out(client)


def test_tcp_peer_close_raises(tcp_pair):
    client, server = tcp_pair
    server.close()
    with pytest.raises(TransportError, match="closed"):
        client.read(1, 2.0)


def test_tcp_write_to_a_peer_that_never_reads_fails_after_write_timeout(tcp_pair):
    client, _ = tcp_pair
    client.write_timeout_s = 0.2
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="accepted no data for 0.2 s"):
        client.write(bytes(64 * 2**20))
    assert time.monotonic() - t0 < 5


def test_tcp_connection_refused_raises_promptly():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    t0 = time.monotonic()
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        TCPTransport("127.0.0.1", port).open(2.0)
    assert time.monotonic() - t0 < 2.5


def test_serial_pty_carries_bytes_and_times_out(pty_pair):
    port, master = pty_pair
    port.write(b"\x00\xff\r\n\x03binary")
    assert os.read(master, 100) == b"\x00\xff\r\n\x03binary"  # raw: no line discipline
    os.write(master, b"\x11\x13reply")
    assert read_exactly(port, 7) == b"\x11\x13reply"
    assert_read_times_out(port)


def test_serial_missing_port_raises_within_the_timeout():
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="/dev/does-not-exist"):
        SerialTransport("/dev/does-not-exist").open(0.3)
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.read(0, 1.0), "max_bytes"),
        (lambda t: t.read(10, -1), "timeout_s"),
        (lambda t: t.write("text"), "data"),
        (lambda t: t.open(0), "timeout_s"),
    ],
)
def test_bad_arguments_name_themselves(call, message):
    host, _ = loopback_pair()
    with pytest.raises((ValueError, TypeError), match=message):
        call(host)


def test_closed_transport_refuses_io():
    host, _ = loopback_pair()
    host.close()
    with pytest.raises(TransportError, match="closed"):
        host.write(b"x")


@pytest.mark.parametrize("location", ["localhost", "host:0", "host:99999", ":80", "host:port"])
def test_bad_socket_locations_are_refused(location):
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port(location)
