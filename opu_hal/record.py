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

Loading validates everything (:mod:`opu_hal.record_files`): the sections' ranges
(exposures, scales and ``max_dn`` > 0, counts in range, ``lit_fraction`` in (0, 1], no
NaN or infinity in the linear and sentinel sections but the infinite ``max_dn`` of a device
without a camera; docs/api.md section 10 lists them), each array
against the shape, dtype and SHA-256 the JSON lists for it, and the arrays the driver
computes with for their sections' shapes, finiteness and range. Any failure is a
:class:`~opu_hal.errors.CalibrationRecordError` naming the file and the field.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .errors import CalibrationRecordError
from .record_files import (
    check_arrays,
    describe,
    read_arrays,
    read_json,
    read_listing,
    validation_error,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class _Section(BaseModel):
    """A record section: frozen; infinities written as the JSON strings ``"Infinity"``."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")


class DeviceIdentity(_Section):
    """Which device a record belongs to."""

    model: str
    serial: str
    firmware_version: str
    protocol_version: str
    seed: int | None = Field(None, description="seed of an emulated device; None for hardware")


class CameraCalibration(_Section):
    """EMVA 1288 figures of the camera. DN: camera counts; e: electrons; us: microseconds."""

    dark_exposure_us: float = Field(gt=0, allow_inf_nan=False, description="exposure of the dark frames (us)")
    offset_dn: float = Field(ge=0, allow_inf_nan=False, description="mean dark count (DN)")
    dark_noise_dn: float = Field(ge=0, allow_inf_nan=False, description="temporal dark noise incl. quantisation (DN)")
    dsnu_dn: float = Field(description="dark-signal non-uniformity, spatial std of the dark mean (DN)")
    hot_pixels: int = Field(ge=0, description="pixels stuck far above the dark level, among those measured")
    gain_dn_per_e: float = Field(gt=0, allow_inf_nan=False, description="system gain K from the photon-transfer slope (DN/e-)")
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
    n_pixels: int = Field(ge=1, description="pixels measured")
    exposures_us: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        description="exposures of the photon-transfer pairs (us)"
    )
    frames: int = Field(ge=0, description="frames acquired")

    @field_validator("n_pixels")
    @classmethod
    def _check_counts(cls, value: int, info: ValidationInfo) -> int:
        """n_pixels (validated after hot_pixels) holds the hot pixels counted among them."""
        hot = info.data.get("hot_pixels")
        if hot is not None and hot > value:
            raise ValueError(f"expected at least the {hot} hot pixels counted")
        return value


class ExposureCalibration(_Section):
    """Result of auto-exposure (us microseconds, DN camera counts)."""

    exposure_us: float = Field(gt=0, allow_inf_nan=False)
    frametime_us: float = Field(gt=0, allow_inf_nan=False)
    frame_rate_hz: float = Field(gt=0, allow_inf_nan=False)
    percentile: float = Field(gt=0, le=100)
    target_fraction: float = Field(description="target of the percentile as a fraction of the dark-subtracted range")
    quantile_dn: float = Field(description="achieved percentile of the dark-subtracted output (DN)")
    target_dn: float
    saturated_fraction: float = Field(ge=0, le=1)
    acquisitions: int = Field(ge=0)
    frames: int = Field(0, ge=0, description="frames acquired, dark frames included")
    converged: bool
    history: list[tuple[float, float, float]] = Field(
        description="(exposure_us, quantile_dn, saturated_fraction) of every acquisition"
    )
    histogram_before: list[int] = Field(description="counts of the first acquisition's DN in 256 equal bins")
    histogram_after: list[int] = Field(description="counts of the last acquisition's DN in 256 equal bins")
    max_dn: float = Field(gt=0, description="top of the histogram range (DN); inf without a camera")


class LinearCalibration(_Section):
    """Linear-projection calibration (docs/physics.md sections 4.1-4.2); arrays are named ``linear_*``.

    ``dn_per_intensity`` is the camera scale c at ``exposure_us``: counts per unit of
    ``|R x|^2 / lit_fraction`` (whose mean over pixels is 1 for the all-ones input of the
    calibrated layout); the device's own unit of ``|R x|^2`` gives ``c / lit_fraction``
    counts (docs/physics.md section 4.3).
    """

    model_config = ConfigDict(allow_inf_nan=False)

    scheme: Literal["complement", "reference"]
    n_features: int = Field(ge=1, description="data features")
    n_device_features: int = Field(ge=1, description="features shown on the DMD (data plus reference)")
    n_candidates: int = Field(ge=1, description="camera pixels read, among which the outputs are selected")
    n_components: int = Field(ge=1, description="outputs kept (brightest reference), at most n_candidates")
    exposure_us: float = Field(gt=0, description="exposure of the calibration (us)")
    frametime_us: float = Field(gt=0, description="frame time of the calibration (us)")
    dn_per_intensity: float = Field(gt=0, description="camera scale c at exposure_us (DN per unit intensity)")
    lit_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="fraction of the DMD's mirrors the calibrated all-ones input lights (layout.lit_fraction); "
        "1 in records made before the emulator's light followed the lit mirrors",
    )
    dark_level_dn: float = Field(ge=0, description="mean dark count over the candidate pixels (DN)")
    max_dn: float = Field(gt=0, allow_inf_nan=True, description="saturated count (DN); inf without a camera")
    noise_rel: float = Field(ge=0, description="relative repeatability error of a binary projection")
    frames: int = Field(ge=0)

    @field_validator("n_device_features", "n_components")
    @classmethod
    def _within(cls, value: int, info: ValidationInfo) -> int:
        """n_device_features >= n_features and n_components <= n_candidates (each validated after the other)."""
        bound = {"n_device_features": "n_features", "n_components": "n_candidates"}[info.field_name]  # type: ignore[index]
        other = info.data.get(bound)
        if other is not None and (value < other if bound == "n_features" else value > other):
            raise ValueError(f"expected {'at least' if bound == 'n_features' else 'at most'} {bound} = {other}")
        return value


class SentinelSet(_Section):
    """Inputs replayed by the drift monitor, and the frames they gave (arrays ``sentinel_*``)."""

    n_features: int = Field(ge=1)
    n_outputs: int = Field(ge=1)
    exposure_us: float = Field(gt=0, allow_inf_nan=False)
    device_time_s: float = Field(ge=0, allow_inf_nan=False, description="device time when the sentinel frames were taken (s)")


class CalibrationRecord(BaseModel):
    """Everything calibrated on one device, with provenance; see the module docstring."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

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
        """Write ``<path>.json`` and ``<path>.npz`` (a directory gets ``calibration.*``); returns the JSON path.

        The JSON lists every array's shape, dtype and SHA-256 under ``arrays``.
        """
        json_path = _json_path(Path(path))
        json_path.parent.mkdir(parents=True, exist_ok=True)
        npz_path = json_path.with_suffix(".npz")
        with open(npz_path, "wb") as fh:
            np.savez_compressed(fh, **self._arrays)
        meta = json.loads(self.model_dump_json())
        meta["arrays"] = {name: describe(value).model_dump(mode="json") for name, value in sorted(self._arrays.items())}
        json_path.write_text(json.dumps(meta, indent=2))
        logger.info("saved calibration %s to %s", self.id, json_path)
        return json_path

    @classmethod
    def load(cls, path: str | Path) -> "CalibrationRecord":
        """Read and validate a record written by :meth:`save` (the JSON path, its stem, or its directory).

        Raises ``FileNotFoundError`` without the JSON, else :class:`~opu_hal.errors.CalibrationRecordError`
        naming the file and field of anything unreadable, out of range or corrupt.
        """
        json_path = _json_path(Path(path))
        meta = read_json(json_path)
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CalibrationRecordError(
                json_path, "schema_version", f"expected a record of schema version {SCHEMA_VERSION}, got version {version!r}"
            )
        listing = read_listing(json_path, meta)
        try:
            record = cls.model_validate(meta)
        except ValidationError as exc:
            raise validation_error(json_path, exc) from None
        npz_path = json_path.with_suffix(".npz")
        record._arrays = read_arrays(npz_path, listing)
        check_arrays(npz_path, record, record._arrays)
        return record


def _json_path(path: Path) -> Path:
    """``x.json`` as given; a directory holds ``calibration.json``; a stem gets ``.json``."""
    if path.suffix == ".json":
        return path
    if path.is_dir():
        return path / "calibration.json"
    return path.with_name(path.name + ".json")
