"""Numeric limits shared by the driver, the protocol and the emulator, each written once.

Units are in the names: ``_us`` microseconds.
"""

from __future__ import annotations

#: Shortest exposure a device may be asked for (us).
MIN_EXPOSURE_US = 1.0
#: Longest exposure a device may be asked for (us).
MAX_EXPOSURE_US = 1e6
#: Longest frametime a device may be asked for (us).
MAX_FRAMETIME_US = 1e7
#: Most frames one device call may hold.
MAX_BATCH_FRAMES = 1_000_000
