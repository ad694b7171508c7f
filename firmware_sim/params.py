"""Parameters of the emulated OPU, validated once for every way they arrive.

The same pydantic model validates the Python API (``EmulatorParams(...)``), the query
string of ``emu://`` / ``sim://`` URLs and the command line of ``python -m firmware_sim``.
Units are in the field names: ``_us`` microseconds, ``_s`` seconds, ``_e`` electrons,
``_dn`` digital numbers (camera counts), ``_mw`` milliwatts.

Defaults describe a LightOn-like instrument: a 912 x 1140 DMD, a 2040 x 1088 8-bit CMOS
camera in the style of the CMOSIS CMV4000 (full well ~ 12 ke-, ~ 12 e- read noise, 5 us line
time so the full sensor reads in 5.4 ms and a 80-row ROI in 0.4 ms), 400 us exposure and
500 us frametime (2 kHz), and a photon flux that puts a half-lit DMD's mean speckle at
about 8 % of the 8-bit range: speckle intensity is exponential, so the saturated fraction
of a half-lit input is then about exp(-12) ~ 1e-5 (auto-exposure tunes it per use).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from opu_hal.limits import MAX_EXPOSURE_US, MIN_EXPOSURE_US

Shape = tuple[int, int]


def _parse_shape(value: Any) -> Any:
    """Accept ``"912x1140"`` (rows x columns) as well as a 2-sequence."""
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        if len(parts) != 2:
            raise ValueError(f"expected a shape 'ROWSxCOLS' such as '912x1140', got {value!r}")
        return tuple(int(p) for p in parts)
    return value


class EmulatorParams(BaseModel):
    """Physical and instrumental parameters of an emulated OPU (see docs/physics.md sections 1-3)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    seed: int = Field(0, ge=0, description="seed of the medium, of the sensor's fixed pattern and (by default) of the noise")
    noise_seed: int | None = Field(
        None,
        ge=0,
        description="seed of the temporal noise (camera shot, read and dark noise, laser jitter and wander); "
        "None: seed. Devices of the same seed and different noise_seed share the medium, not the noise",
    )
    fidelity: Literal["physical", "ideal"] = Field(
        "physical", description="'physical': full camera model; 'ideal': exact float |R x|^2"
    )
    # DMD
    dmd_shape: Shape = Field((912, 1140), description="DMD mirrors (rows, columns)")
    dmd_max_rate_hz: float = Field(22_000.0, gt=0, description="fastest binary frame rate (Hz)")
    # camera
    camera_shape: Shape = Field((1088, 2040), description="sensor pixels (rows, columns)")
    bit_depth: Literal[8, 10, 12, 16] = Field(8, description="ADC bits")
    exposure_us: float = Field(400.0, ge=MIN_EXPOSURE_US, le=MAX_EXPOSURE_US, description="default exposure (us)")
    quantum_efficiency: float = Field(0.6, gt=0, le=1, description="eta, electrons per photon")
    gain_dn_per_e: float | None = Field(
        None, gt=0, description="system gain K (DN/e-); default: full well maps to the ADC range"
    )
    read_noise_e: float = Field(12.0, ge=0, description="temporal dark noise sigma (e-)")
    dark_current_e_per_s: float = Field(50.0, ge=0, description="dark current (e-/s)")
    full_well_e: float = Field(12_000.0, gt=0, description="full-well capacity (e-)")
    offset_dn: float = Field(
        4.0,
        ge=0,
        description="dark offset (DN); default 4 DN at 8 bits, scaled with the ADC range (64 DN at 12 bits) "
        "so that read noise never clips at zero",
    )
    prnu: float = Field(0.0, ge=0, lt=1, description="photo-response non-uniformity (relative std)")
    dsnu_e: float = Field(0.0, ge=0, description="dark-signal non-uniformity (e-, std over pixels)")
    hot_pixel_fraction: float = Field(0.0, ge=0, lt=1, description="fraction of stuck-high pixels")
    grain_px: float = Field(1.0, ge=1, description="speckle grain diameter (camera pixels)")
    line_time_us: float = Field(5.0, gt=0, description="camera readout time per ROI row (us)")
    frame_margin_us: float = Field(100.0, ge=0, description="frametime beyond exposure/readout (us)")
    # light
    laser_power_mw: float = Field(10.0, gt=0, description="laser power setpoint (mW)")
    photons_per_us_per_mw: float = Field(
        0.8, gt=0, description="photons per pixel per us per mW at unit intensity |R x|^2 = 1"
    )
    laser_jitter: float = Field(0.002, ge=0, lt=0.5, description="per-frame power jitter (rel. std)")
    laser_wander: float = Field(0.0, ge=0, lt=0.5, description="slow power wander (rel. std)")
    laser_wander_tau_s: float = Field(60.0, gt=0, description="correlation time of the wander (s)")
    # medium
    drift_tau_s: float | None = Field(
        None,
        gt=0,
        validation_alias=AliasChoices("drift_tau_s", "drift"),
        description="decorrelation time tau of the medium (s); None: no drift",
    )
    medium: Literal["dense", "structured", "auto"] = Field(
        "auto",
        description="transmission-matrix model: 'dense' i.i.d. Gaussian matrix, 'structured' FFT-based "
        "(any size), 'auto' dense while the matrix fits the memory budget (cache_mb), structured beyond",
    )
    # implementation
    tile_size: int = Field(512, ge=16, le=8192, description="edge of a generated matrix tile")
    cache_mb: float = Field(4096.0, ge=0, description="memory budget for the dense matrix (MB); medium=auto goes structured beyond")

    @field_validator("dmd_shape", "camera_shape", mode="before")
    @classmethod
    def _shape_from_string(cls, value: Any) -> Any:
        return _parse_shape(value)

    @model_validator(mode="before")
    @classmethod
    def _offset_for_bit_depth(cls, data: Any) -> Any:
        """Default offset: 4 DN per 8-bit step, i.e. ``4 * 2**(bit_depth - 8)`` DN."""
        if isinstance(data, dict) and "offset_dn" not in data:
            bits = data.get("bit_depth", 8)
            if isinstance(bits, str) and bits.strip().isdigit():
                bits = int(bits)
            if bits in (8, 10, 12, 16):
                data = {**data, "offset_dn": 4.0 * 2 ** (bits - 8)}
        return data

    @field_validator("bit_depth", mode="before")
    @classmethod
    def _bit_depth_from_string(cls, value: Any) -> Any:
        """URL query values arrive as strings: ``"12"`` means 12 (a Literal does not coerce)."""
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @field_validator("dmd_shape", "camera_shape")
    @classmethod
    def _positive_shape(cls, value: Shape) -> Shape:
        if min(value) < 1:
            raise ValueError(f"expected positive (rows, columns), got {value}")
        return value

    @field_validator("drift_tau_s", mode="before")
    @classmethod
    def _drift_off(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("", "none", "off", "0"):
            return None
        if value == 0:
            return None
        return value

    @model_validator(mode="after")
    def _check_gain(self) -> "EmulatorParams":
        if self.offset_dn >= self.max_dn:
            raise ValueError(f"offset_dn must be below the ADC maximum {self.max_dn}, got {self.offset_dn}")
        return self

    @property
    def temporal_seed(self) -> int:
        """Seed of the temporal noise: ``noise_seed``, or ``seed`` when it is None."""
        return self.seed if self.noise_seed is None else self.noise_seed

    @property
    def max_dn(self) -> int:
        """Largest camera count, ``2**bit_depth - 1`` (DN)."""
        return (1 << self.bit_depth) - 1

    @property
    def system_gain(self) -> float:
        """System gain K (DN per electron): given, or the full well spread over the ADC range."""
        if self.gain_dn_per_e is not None:
            return self.gain_dn_per_e
        return (self.max_dn + 1 - self.offset_dn) / self.full_well_e * 1.02

    @property
    def electrons_per_intensity_per_us(self) -> float:
        """Mean photo-electrons per pixel per microsecond of exposure at ``|R x|^2 = 1``."""
        return self.quantum_efficiency * self.photons_per_us_per_mw * self.laser_power_mw

    @property
    def n_mirrors(self) -> int:
        """Number of DMD mirrors."""
        return self.dmd_shape[0] * self.dmd_shape[1]

    @property
    def n_pixels(self) -> int:
        """Number of camera pixels."""
        return self.camera_shape[0] * self.camera_shape[1]


def params_from_query(query: dict[str, str], **overrides: Any) -> EmulatorParams:
    """Build validated parameters from URL query values (strings) plus keyword overrides.

    Raises ``ValueError`` naming an unknown key and listing the known ones.
    """
    known = set(EmulatorParams.model_fields) | {"drift"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ValueError(
            f"unknown emulator parameter(s) {unknown}; expected some of {sorted(known)}"
        )
    return EmulatorParams.model_validate({**query, **overrides})
