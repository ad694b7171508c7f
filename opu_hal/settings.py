"""Typed settings of an OPU and the description a device gives of itself."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from .layout import Strategy
from .limits import MAX_BATCH_FRAMES, MAX_EXPOSURE_US, MAX_FRAMETIME_US


class OPUSettings(BaseModel):
    """Acquisition settings of an :class:`~opu_hal.OPU`, validated when built; frozen.

    Change settings by replacing them whole: ``opu.settings = {"exposure_us": 300}`` or
    ``opu.settings = opu.settings.model_copy(update={"exposure_us": 300})`` (validated too);
    assigning a field raises a ``ValidationError`` (a ``ValueError``) that says so.
    Units are in the names: ``_us`` microseconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exposure_us: float | None = Field(
        None, gt=0, le=MAX_EXPOSURE_US, description="camera exposure (us); None: the device's default"
    )
    frametime_us: float | None = Field(
        None, gt=0, le=MAX_FRAMETIME_US, description="time per frame (us); None: the shortest the device allows"
    )
    input_roi_strategy: Strategy = Field("auto", description="DMD layout: 'auto', 'full' or 'small'")
    max_batch_frames: int = Field(
        1000, ge=1, le=MAX_BATCH_FRAMES, description="frames per device call; larger batches are split"
    )
    saturation_warning_fraction: float = Field(
        1e-4, ge=0, le=1, description="warn (SaturationWarning) above this fraction of saturated pixels"
    )

    def __setattr__(self, name: str, value: Any) -> None:
        """Refuse the assignment: settings are frozen and replaced whole (see the class docstring)."""
        message = ("settings are frozen: to change {name}, assign new settings whole, "
                   'opu.settings = opu.settings.model_copy(update={"{name}": ...}) or opu.settings = {"{name}": ...}')
        raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
            type=PydanticCustomError("frozen_instance", message, {"name": name}), loc=(name,), input=value)])

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> OPUSettings:
        """A copy with the fields of ``update`` changed, validated like new settings (pydantic's copy is not)."""
        if not update:
            return super().model_copy(deep=deep)
        return type(self).model_validate({**self.model_dump(), **update})


class DeviceLimits(BaseModel):
    """What the device can do."""

    model_config = ConfigDict(frozen=True)

    max_n_components: int = Field(description="most outputs per frame (camera pixels)")
    max_n_features: int = Field(description="most features per frame (DMD mirrors)")
    min_exposure_us: float = Field(description="shortest exposure (us)")
    max_exposure_us: float = Field(description="longest exposure (us)")
    max_batch_frames: int = Field(description="most frames one device call can hold")


class DeviceInfo(BaseModel):
    """What a device says about itself when opened.

    ``dark_level_dn``, ``dark_current_dn_per_us`` and ``dn_per_intensity_per_us`` are the
    device's nominal (factory) calibration: an unlit pixel reads ``dark_level_dn +
    dark_current_dn_per_us * exposure_us`` on average, and a lit one adds
    ``dn_per_intensity_per_us * exposure_us`` per unit of ``|R x|^2``. A calibration record replaces them.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    serial: str
    firmware_version: str
    protocol_version: str
    dmd_shape: tuple[int, int] = Field(description="DMD mirrors (rows, columns)")
    camera_shape: tuple[int, int] = Field(description="sensor pixels (rows, columns)")
    bit_depth: int = Field(description="camera ADC bits (0: float intensities, no camera)")
    fidelity: Literal["physical", "ideal", "hardware"]
    default_exposure_us: float
    dark_level_dn: float = Field(description="mean count of an unlit pixel at zero exposure (DN)")
    dark_current_dn_per_us: float = Field(0.0, description="dark-current counts per us of exposure (DN/us)")
    dn_per_intensity_per_us: float
    limits: DeviceLimits
    medium: str | None = Field(
        None,
        description="transmission-matrix model of an emulated device: 'dense' (i.i.d. Gaussian matrix), "
        "'structured' (FFT-based), or 'auto' (dense for configurations whose matrix fits the emulator's "
        "memory budget, structured beyond) until a configuration is applied, then the model that "
        "configuration uses ('dense' or 'structured'); None for hardware",
    )

    def nominal_scale(self, exposure_us: float) -> tuple[float, float]:
        """(DN per unit of ``|R x|^2``, dark level in DN) at ``exposure_us`` (us), from the nominal calibration.

        Without a camera (``bit_depth`` 0) frames already are intensities: (1, dark level).
        """
        gain = 1.0 if self.bit_depth == 0 else self.dn_per_intensity_per_us * exposure_us
        return gain, self.dark_level_dn + self.dark_current_dn_per_us * exposure_us
