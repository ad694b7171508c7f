"""Options shared by the whole test suite."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device-url", action="append", default=[], metavar="URL",
        help="real instrument to run the device suites on: pylon://SERIAL, socket://HOST:PORT, alp://N, visa://RESOURCE",
    )
