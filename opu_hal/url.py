"""Device URLs: which backend answers and with what parameters (see API.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

SCHEMES: tuple[str, ...] = ("emu", "sim", "socket", "serial", "bench")


@dataclass(frozen=True)
class DeviceURL:
    """A parsed device URL: ``scheme``, ``location`` (host:port or device path) and ``query``."""

    scheme: str
    location: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"{self.scheme}://{self.location}"
        if self.query:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.query.items())
        return text


def parse_device_url(url: str) -> DeviceURL:
    """Split a device URL; a bare path such as ``/dev/ttyUSB0`` means ``serial://``.

    Raises ``TypeError`` for a non-string and ``ValueError`` for an unknown scheme or a
    repeated query key.
    """
    if not isinstance(url, str):
        raise TypeError(f"device: expected a URL string such as 'emu://', got {type(url).__name__}")
    if url.startswith("/"):
        return DeviceURL("serial", url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not url.lower().startswith(f"{scheme}://"):
        raise ValueError(f"device: expected a URL with scheme one of {SCHEMES} or a device path, got {url!r}")
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"device: query key(s) {repeated} given more than once in {url!r}")
    return DeviceURL(scheme, parts.netloc + parts.path, dict(pairs))
