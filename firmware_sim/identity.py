"""What the emulated device says about itself: its :class:`~opu_hal.settings.DeviceInfo`."""

from __future__ import annotations

from opu_hal.limits import MAX_EXPOSURE_US, MIN_EXPOSURE_US
from opu_hal.settings import DeviceInfo, DeviceLimits

from .model import FIRMWARE_VERSION, MODEL_NAME, OPUModel
from .params import EmulatorParams


def datasheet_dark_level_dn(bit_depth: int, exposure_us: float) -> float:
    """Nominal dark level (DN) of the emulated device model at ``bit_depth`` bits and ``exposure_us`` (us).

    The datasheet figure of the model, from the default :class:`EmulatorParams` (offset
    ``4 * 2**(bit_depth - 8)`` DN plus the default dark current over the exposure,
    docs/physics.md section 2.2): independent of the offset a particular device is
    configured with, so a device whose dark level moved can be told from a healthy one.
    """
    p = EmulatorParams(bit_depth=bit_depth)
    return p.offset_dn + p.system_gain * p.dark_current_e_per_s * exposure_us * 1e-6


def device_info(model: OPUModel, protocol_version: str, max_batch_frames: int) -> DeviceInfo:
    """The description of the emulated device ``model``, as its firmware (or ``emu://``) announces it.

    ``protocol_version``: what the device speaks; ``max_batch_frames``: frames one call may hold.
    ``medium``: the model every configuration uses (``dense`` or ``structured``), or ``auto``
    when ``medium=auto`` gives each configuration the one its size calls for (the model logs it;
    CONFIGURED names it, and the host's ``DeviceInfo`` then says it).
    """
    p = model.params
    kinds = {model.medium_for(1, 1), model.medium_for(p.n_mirrors, model.max_outputs())}
    return DeviceInfo(
        model=MODEL_NAME,
        serial=model.serial,
        firmware_version=FIRMWARE_VERSION,
        protocol_version=protocol_version,
        dmd_shape=p.dmd_shape,
        camera_shape=p.camera_shape,
        bit_depth=0 if model.ideal else p.bit_depth,
        fidelity=p.fidelity,
        default_exposure_us=p.exposure_us,
        dark_level_dn=model.dark_level_dn(0.0),
        dark_current_dn_per_us=model.dark_level_dn(1.0) - model.dark_level_dn(0.0),
        dn_per_intensity_per_us=model.dn_per_intensity(1.0),
        limits=DeviceLimits(
            max_n_components=model.max_outputs(),
            max_n_features=p.n_mirrors,
            min_exposure_us=MIN_EXPOSURE_US,
            max_exposure_us=MAX_EXPOSURE_US,
            max_batch_frames=max_batch_frames,
        ),
        medium=kinds.pop() if len(kinds) == 1 else "auto",
    )
