"""Backends: what answers behind a device URL (the table of schemes is in :mod:`opu_hal.url`)."""

from __future__ import annotations

from typing import Any

from ..url import DeviceURL, resolve_url, scheme_info, schemes
from .base import AppliedConfig, Backend, DeviceConfig, Frames


def make_backend(url: DeviceURL, seed: int | None) -> Backend:
    """The backend for a parsed URL; ``seed`` applies to schemes with a ``seed`` key (the emulated ones).

    Raises ValueError naming a bad query key (see :func:`opu_hal.url.resolve_url`).
    """
    return resolve_url(url, _seed_override(url, seed)).make_backend()


def _seed_override(url: DeviceURL, seed: int | None) -> dict[str, Any]:
    if seed is None:
        return {}
    if "seed" not in scheme_info(url.scheme).documented_keys():
        seeded = [name for name in schemes() if "seed" in scheme_info(name).documented_keys()]
        raise ValueError(f"seed: applies to devices with a seed (schemes {seeded}); {url.scheme}:// devices have their own")
    if "seed" in url.query:
        given = resolve_url(url).value("seed")
        if given != seed:
            raise ValueError(f"seed: the URL says seed={given} but the seed argument is {seed}")
    return {"seed": seed}


__all__ = ["AppliedConfig", "Backend", "DeviceConfig", "Frames", "make_backend"]
