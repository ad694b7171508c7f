"""A TCP proxy that damages a fraction of the segments it forwards, both ways (soak tests, benchmarks).

Each direction is read in segments of at most ``segment`` bytes (a TCP segment's worth);
each segment is damaged with probability ``rate``: half of the damaged ones get one bit
flipped, the other half lose one to eight bytes. The damage is drawn from a seeded
generator, so a run is repeatable up to the timing of reads.
"""

from __future__ import annotations

import random
import socket
import threading


class CorruptingProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream`` (host, port), damaging ``rate`` of the segments.

    ``rate`` is a probability in [0, 1]; ``segment`` the largest read forwarded at once (bytes).
    ``segments`` and ``damaged`` count the segments forwarded and damaged so far.
    """

    def __init__(self, upstream: tuple[str, int], rate: float, seed: int = 0, segment: int = 1460) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate: expected a probability in [0, 1], got {rate!r}")
        if segment < 1:
            raise ValueError(f"segment: expected at least 1 byte, got {segment!r}")
        self.upstream, self.rate, self.segment = upstream, rate, segment
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.segments = 0
        self.damaged = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                return
            self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _damage(self, data: bytes) -> bytes:
        with self._lock:
            self.segments += 1
            if self._rng.random() >= self.rate:
                return data
            self.damaged += 1
            at = self._rng.randrange(len(data))
            if self._rng.random() < 0.5:
                return data[:at] + bytes([data[at] ^ (1 << self._rng.randrange(8))]) + data[at + 1 :]
            return data[:at] + data[at + self._rng.randint(1, 8) :]

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(self.segment):
                dst.sendall(self._damage(data))
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop accepting and cut every forwarded connection."""
        self._listener.close()
        for sock in self._sockets:
            sock.close()
