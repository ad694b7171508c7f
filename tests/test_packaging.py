"""What an installed opu-hal carries besides its modules."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["opu_hal", "firmware_sim", "calibration"])
def test_the_typed_packages_carry_the_py_typed_marker_as_package_data(package: str) -> None:
    assert (ROOT / package / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data.get(package, [])
