"""Backends: what answers behind a device URL."""

from __future__ import annotations

from typing import Any

from ..url import DeviceURL
from .base import AppliedConfig, Backend, DeviceConfig, Frames


def make_backend(url: DeviceURL, seed: int | None) -> Backend:
    """The backend for a parsed URL; ``seed`` applies to emulated devices only."""
    if url.scheme == "emu":
        from firmware_sim.params import params_from_query

        from .emulated import EmulatedBackend

        return EmulatedBackend(params_from_query(url.query, **_seed_override(url, seed)))
    if url.scheme in ("sim", "socket", "serial"):
        from .wire import make_wire_backend

        return make_wire_backend(url, _seed_override(url, seed))
    if url.scheme == "bench":
        from .bench import Bench

        if seed is not None or url.query:
            raise ValueError(f"device: a bench:// device takes no seed and no query keys (its YAML file says it all), got {str(url)!r}")
        return Bench.from_file(url.location)
    raise ValueError(f"device: the {url.scheme}:// backend is not available in this version (use emu://)")


def _seed_override(url: DeviceURL, seed: int | None) -> dict[str, Any]:
    if seed is None:
        return {}
    if "seed" in url.query and int(url.query["seed"]) != seed:
        raise ValueError(f"seed: the URL says seed={url.query['seed']} but the seed argument is {seed}")
    return {"seed": seed}


__all__ = ["AppliedConfig", "Backend", "DeviceConfig", "Frames", "make_backend"]
