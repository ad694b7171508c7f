"""Every exception class of the packages lives in opu_hal.errors, derives from OPUError and is exported."""

import importlib
import inspect
import pkgutil

import pytest

import opu_hal
import opu_hal.errors

PACKAGES = ("opu_hal", "firmware_sim", "calibration")


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class (warnings excepted) defined in a module of the packages, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules = [package_name] + [m.name for m in pkgutil.walk_packages(package.__path__, package_name + ".")
                                    if not m.name.endswith("__main__")]
        for module_name in modules:
            module = importlib.import_module(module_name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if (issubclass(cls, BaseException) and not issubclass(cls, Warning)
                        and cls.__module__.split(".")[0] in PACKAGES):
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_class_derives_from_opu_error_and_lives_in_opu_hal_errors() -> None:
    classes = _exception_classes()
    assert len(classes) >= 17  # the walk found the classes (it imports every module)
    outside = sorted(name for name, cls in classes.items() if cls.__module__ != "opu_hal.errors")
    assert outside == [], "exception classes defined outside opu_hal/errors.py"
    not_opu = sorted(name for name, cls in classes.items() if not issubclass(cls, opu_hal.OPUError))
    assert not_opu == [], "exception classes not derived from OPUError"


def test_every_exception_and_warning_of_opu_hal_errors_is_exported() -> None:
    defined = {name for name, cls in vars(opu_hal.errors).items()
               if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == "opu_hal.errors"}
    assert defined <= set(opu_hal.errors.__all__)
    assert defined <= set(opu_hal.__all__)
    assert all(getattr(opu_hal, name) is getattr(opu_hal.errors, name) for name in defined)


@pytest.mark.parametrize(("module", "name"), [
    ("opu_hal.transport.base", "TransportError"),
    ("opu_hal.transport", "TransportError"),
    ("opu_hal.protocol.messages", "InvalidArgumentError"),
    ("opu_hal.protocol.device_side", "CommandError"),
    ("opu_hal.protocol.client", "DeviceResetError"),
    ("opu_hal.protocol.frames", "CorruptFrameError"),
    ("opu_hal.backends.bench", "FrameSyncError"),
    ("opu_hal.devices.alp", "AlpError"),
    ("opu_hal.compat.lightonml", "OPUNotFittedError"),
])
def test_the_old_import_paths_still_give_the_moved_classes(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(opu_hal.errors, name)


def test_a_refused_device_command_is_an_opu_error() -> None:
    from opu_hal.protocol.messages import ErrorCode

    exc = opu_hal.errors.CommandError(ErrorCode.INVALID_ARGUMENT, "exposure_us: out of range", cacheable=False, limit=1)
    assert isinstance(exc, opu_hal.OPUError)
    assert (exc.code, exc.cacheable, exc.details, str(exc)) == (ErrorCode.INVALID_ARGUMENT, False, {"limit": 1},
                                                                "exposure_us: out of range")
