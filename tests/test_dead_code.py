"""Code that nothing used was removed and stays removed (found with grep and vulture)."""

import importlib

import pytest


@pytest.mark.parametrize(("module", "owner", "name"), [
    ("firmware_sim.medium", "Medium", "time_s"),
    ("opu_hal.devices.pylon", "PylonCamera", "_node"),
    ("opu_hal.randnla.distributed", None, "close_local_devices"),
])
def test_unused_code_is_gone(module: str, owner: str | None, name: str) -> None:
    target = importlib.import_module(module)
    if owner is not None:
        target = getattr(target, owner)
    assert not hasattr(target, name)
