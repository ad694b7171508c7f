"""firmware_sim: the device side of opu-hal.

A physical model of a whole OPU (DMD, scattering medium, laser, camera per EMVA 1288,
drift and frame timing) and the firmware that speaks the opu-hal protocol over any
transport. Drivers and tests reach it as they would reach hardware.
"""

from .model import Acquisition, Configuration, OPUModel
from .params import EmulatorParams

__all__ = ["Acquisition", "Configuration", "EmulatorParams", "OPUModel"]
