"""The calibration record: what was measured on which device, saved as JSON plus ``.npz``.

A :class:`CalibrationRecord` is a versioned pydantic model. Its metadata (device, settings,
frames spent, quality metrics, one section per calibration) is written to
``<stem>.json``; its arrays (selected pixels, references, sentinel frames...) to
``<stem>.npz``. Sections name their arrays; :meth:`CalibrationRecord.array` fetches them.

Sections:

- ``camera``: dark frames and the photon-transfer curve (:mod:`calibration.camera`).
- ``exposure``: the auto-exposure result (:mod:`calibration.exposure`).
- ``linear``: the linear-projection calibration (:mod:`calibration.linear`).
- ``sentinels``: inputs and frames replayed by the drift monitor (:mod:`calibration.drift`).
- ``tm``: the complex transmission-matrix retrieval (:mod:`calibration.tm`), free-form
  metadata whose arrays are named with the prefix ``tm_``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class DeviceIdentity(BaseModel):
    """Which device a record belongs to."""

    model_config = ConfigDict(frozen=True)

    model: str
    serial: str
    firmware_version: str
    protocol_version: str
    seed: int | None = Field(None, description="seed of an emulated device; None for hardware")


class CameraCalibration(BaseModel):
    """EMVA 1288 figures of the camera. DN: camera counts; e: electrons; us: microseconds."""

    model_config = ConfigDict(frozen=True)

    dark_exposure_us: float = Field(description="exposure of the dark frames (us)")
    offset_dn: float = Field(description="mean dark count (DN)")
    dark_noise_dn: float = Field(description="temporal dark noise incl. quantisation (DN)")
    dsnu_dn: float = Field(description="dark-signal non-uniformity, spatial std of the dark mean (DN)")
    hot_pixels: int = Field(description="pixels stuck far above the dark level, among those measured")
    gain_dn_per_e: float = Field(description="system gain K from the photon-transfer slope (DN/e-)")
    read_noise_dn: float = Field(description="read noise, quantisation removed (DN)")
    read_noise_e: float = Field(description="read noise (e-)")
    read_noise_resolved: bool = Field(
        description="False when the dark noise is below the quantisation step (read noise not measurable)"
    )
    read_noise_source: Literal["dark", "ptc_intercept"] = Field(
        description="dark-frame variance, or the photon-transfer intercept when the dark noise is unresolved"
    )
    saturation_dn: float = Field(description="mean signal at the variance peak (DN)")
    saturation_capacity_e: float = Field(description="saturation capacity (e-)")
    linearity_error_pct: float = Field(description="EMVA linearity error between 5 % and 95 % of saturation (%)")
    n_pixels: int = Field(description="pixels measured")
    exposures_us: list[float] = Field(description="exposures of the photon-transfer pairs (us)")
    frames: int = Field(description="frames acquired")


class ExposureCalibration(BaseModel):
    """Result of auto-exposure (us microseconds, DN camera counts)."""

    model_config = ConfigDict(frozen=True)

    exposure_us: float
    frametime_us: float
    frame_rate_hz: float
    percentile: float
    target_fraction: float = Field(description="target of the percentile as a fraction of the dark-subtracted range")
    quantile_dn: float = Field(description="achieved percentile of the dark-subtracted output (DN)")
    target_dn: float
    saturated_fraction: float
    acquisitions: int
    frames: int = Field(0, description="frames acquired, dark frames included")
    converged: bool
    history: list[tuple[float, float, float]] = Field(
        description="(exposure_us, quantile_dn, saturated_fraction) of every acquisition"
    )
    histogram_before: list[int] = Field(description="counts of the first acquisition's DN in 256 equal bins")
    histogram_after: list[int] = Field(description="counts of the last acquisition's DN in 256 equal bins")
    max_dn: float = Field(description="top of the histogram range (DN)")


class LinearCalibration(BaseModel):
    """Linear-projection calibration (docs/physics.md sections 4.1-4.2); arrays are named ``linear_*``.

    ``dn_per_intensity`` is the camera scale c at ``exposure_us``: counts per unit of
    ``|R x|^2 / lit_fraction`` (whose mean over pixels is 1 for the all-ones input of the
    calibrated layout); the device's own unit of ``|R x|^2`` gives ``c / lit_fraction``
    counts (docs/physics.md section 4.3).
    """

    model_config = ConfigDict(frozen=True)

    scheme: Literal["complement", "reference"]
    n_features: int = Field(description="data features")
    n_device_features: int = Field(description="features shown on the DMD (data plus reference)")
    n_candidates: int = Field(description="camera pixels read, among which the outputs are selected")
    n_components: int = Field(description="outputs kept (brightest reference)")
    exposure_us: float
    frametime_us: float
    dn_per_intensity: float = Field(description="camera scale c at exposure_us (DN per unit intensity)")
    lit_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="fraction of the DMD's mirrors the calibrated all-ones input lights (layout.lit_fraction); "
        "1 in records made before the emulator's light followed the lit mirrors",
    )
    dark_level_dn: float = Field(description="mean dark count over the candidate pixels (DN)")
    max_dn: float = Field(description="saturated count (DN); inf without a camera")
    noise_rel: float = Field(description="relative repeatability error of a binary projection")
    frames: int


class SentinelSet(BaseModel):
    """Inputs replayed by the drift monitor, and the frames they gave (arrays ``sentinel_*``)."""

    model_config = ConfigDict(frozen=True)

    n_features: int
    n_outputs: int
    exposure_us: float
    device_time_s: float = Field(description="device time when the sentinel frames were taken (s)")


class CalibrationRecord(BaseModel):
    """Everything calibrated on one device, with provenance; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    device: DeviceIdentity
    created: str = Field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        description="UTC time of creation (ISO 8601)",
    )
    settings: dict[str, Any] = Field(default_factory=dict, description="OPU settings in force")
    frames_spent: dict[str, int] = Field(default_factory=dict, description="frames acquired, per stage")
    metrics: dict[str, float] = Field(default_factory=dict, description="quality figures, per name")
    camera: CameraCalibration | None = None
    exposure: ExposureCalibration | None = None
    linear: LinearCalibration | None = None
    sentinels: SentinelSet | None = None
    tm: dict[str, Any] | None = Field(None, description="transmission-matrix retrieval (arrays 'tm_*')")

    _arrays: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    # ------------------------------------------------------------------ arrays
    def array(self, name: str) -> np.ndarray:
        """The array ``name`` of this record."""
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"name: expected one of the record's arrays {sorted(self._arrays)}, got {name!r}") from None

    def set_array(self, name: str, value: np.ndarray) -> None:
        """Store (or replace) the array ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        self._arrays[name] = np.asarray(value)

    @property
    def array_names(self) -> list[str]:
        """Names of the stored arrays."""
        return sorted(self._arrays)

    def spend(self, stage: str, frames: int) -> None:
        """Add ``frames`` acquired by ``stage`` to the frame count."""
        self.frames_spent[stage] = self.frames_spent.get(stage, 0) + int(frames)

    def derive(self) -> "CalibrationRecord":
        """A copy with a new id and its own arrays, to be completed by a new calibration."""
        copy = self.model_copy(deep=True, update={"id": uuid.uuid4().hex[:16]})
        copy._arrays = dict(self._arrays)
        return copy

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write ``<path>.json`` and ``<path>.npz`` (a directory gets ``calibration.*``); returns the JSON path."""
        json_path = _json_path(Path(path))
        json_path.parent.mkdir(parents=True, exist_ok=True)
        npz_path = json_path.with_suffix(".npz")
        with open(npz_path, "wb") as fh:
            np.savez_compressed(fh, **self._arrays)
        json_path.write_text(self.model_dump_json(indent=2))
        logger.info("saved calibration %s to %s", self.id, json_path)
        return json_path

    @classmethod
    def load(cls, path: str | Path) -> "CalibrationRecord":
        """Read a record written by :meth:`save` (the JSON path, its stem, or its directory)."""
        json_path = _json_path(Path(path))
        try:
            meta = json.loads(json_path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"calibration: expected a record at {json_path}, found no such file") from None
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"calibration: expected a record of schema version {SCHEMA_VERSION}, got version {version!r} "
                f"in {json_path}"
            )
        record = cls.model_validate(meta)
        npz_path = json_path.with_suffix(".npz")
        with np.load(npz_path, allow_pickle=False) as data:
            record._arrays = {name: data[name] for name in data.files}
        return record


def _json_path(path: Path) -> Path:
    """``x.json`` as given; a directory holds ``calibration.json``; a stem gets ``.json``."""
    if path.suffix == ".json":
        return path
    if path.is_dir():
        return path / "calibration.json"
    return path.with_name(path.name + ".json")
