"""The argument checks of opu_hal.validation, and the modules that use them instead of inline isinstance tests."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from opu_hal.transport import SerialTransport, loopback_pair
from opu_hal.validation import check_bool, check_number, check_positive_seconds


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, "a number"),
    ({"low": 0, "low_open": True}, "a positive number"),
    ({"low": 0}, "a non-negative number"),
    ({"low": 0, "low_open": True, "high": 1}, "a number in (0, 1]"),
    ({"low": 2}, "a number >= 2"),
    ({"high": 5, "high_open": True}, "a number < 5"),
    ({"low": 0, "unit": "s"}, "a non-negative number of seconds"),
    ({"unit": "mW"}, "a number (mW)"),
])
def test_check_number_names_the_argument_the_expected_and_the_received(kwargs, expected) -> None:
    with pytest.raises(TypeError, match="^" + re.escape(f"x: expected {expected}, got str '1'") + "$"):
        check_number("1", "x", **kwargs)
    with pytest.raises(TypeError, match=r"^x: .* got bool True$"):
        check_number(True, "x", **kwargs)
    with pytest.raises(ValueError, match=r"^x: .* got nan$"):
        check_number(math.nan, "x", **kwargs)


def test_check_number_bounds_and_types() -> None:
    assert check_number(1, "x", low=1) == 1.0 and isinstance(check_number(1, "x"), float)
    assert check_number(np.float32(0.5), "x", low=0, high=1) == 0.5
    assert check_number(np.int64(3), "x") == 3.0
    with pytest.raises(ValueError, match=r"^x: expected a positive number, got 0$"):
        check_number(0, "x", low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^x: expected a number in \[0, 1\), got 1.0$"):
        check_number(1.0, "x", low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match=r"^x: expected a number in \(0, inf\), got inf$"):
        check_number(math.inf, "x", low=0, low_open=True, high=math.inf, high_open=True)


def test_check_positive_seconds_and_check_bool() -> None:
    assert check_positive_seconds(0.5, "timeout_s") == 0.5 and check_positive_seconds(math.inf, "timeout_s") == math.inf
    with pytest.raises(ValueError, match=r"^timeout_s: expected a positive number of seconds, got 0$"):
        check_positive_seconds(0, "timeout_s")
    assert check_bool(True, "flag") is True and check_bool(np.bool_(False), "flag") is False
    with pytest.raises(TypeError, match=r"^flag: expected a bool, got int 1$"):
        check_bool(1, "flag")


def test_a_nan_read_timeout_is_refused() -> None:
    host, _ = loopback_pair()
    for call in (lambda: host.read(10, math.nan), lambda: host.read_into(bytearray(4), math.nan)):
        with pytest.raises(ValueError, match=r"^timeout_s: expected a non-negative number of seconds, got nan$"):
            call()


def test_an_argument_of_the_wrong_type_is_a_type_error_that_names_it() -> None:
    host, _ = loopback_pair()
    with pytest.raises(TypeError, match=r"^timeout_s: expected a non-negative number of seconds, got str '1'$"):
        host.read(10, "1")
    with pytest.raises(TypeError, match=r"^max_bytes: expected an integer, got float 10.0$"):
        host.read(10.0, 1.0)
    with pytest.raises(TypeError, match=r"^baudrate: expected an integer, got bool True$"):
        SerialTransport("/dev/null", baudrate=True)
    with pytest.raises(TypeError, match=r"^write_timeout_s: expected a positive number of seconds, got NoneType None$"):
        SerialTransport("/dev/null", write_timeout_s=None)


def test_numpy_scalars_are_numbers_for_the_dfa_arguments() -> None:
    pytest.importorskip("torch")
    from opu_hal.dfa.encoding import ThresholdTernary
    from opu_hal.dfa.feedback import DigitalFeedback

    assert ThresholdTernary(np.float32(0.25)).threshold == 0.25
    assert DigitalFeedback(scale=np.float32(2.0))._scale == 2.0
    with pytest.raises(ValueError, match=r"^scale: expected a positive number, got nan$"):
        DigitalFeedback(scale=math.nan)
