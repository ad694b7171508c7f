"""The shared secret of ``opu-hal serve`` never shows: not in a repr, an exception or a log line.

Real clients against a real ``SharingServer`` on loopback; every log record (DEBUG and up,
of every logger) and every exception text (with its chain) is searched for the token.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from opu_hal import OPU, OPUError
from opu_hal.sharing import SharingServer

DEVICE = "emu://?seed=4&fidelity=ideal&dmd_shape=20x24&camera_shape=10x30"
TOKEN = "s3cret-T0KEN-do-not-show"
WRONG = "wr0ng-T0KEN-do-not-show"


def texts(exc: BaseException) -> list[str]:
    """str and repr of an exception and of everything it was raised from."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return [t for e in seen for t in (str(e), repr(e))]


def test_the_token_appears_in_no_repr_exception_or_log(caplog):
    caplog.set_level(logging.DEBUG)
    server = SharingServer(DEVICE, TOKEN).start()
    shown: list[str] = []
    try:
        url = f"{server.url}?token={TOKEN}"
        with OPU(url, n_components=5, progress=False, timeout_s=2) as opu:
            shown += [repr(opu), str(opu), repr(opu.backend)]
            opu.fit1d(n_features=6)
            assert np.asarray(opu.transform(np.ones((3, 6), dtype=np.uint8))).shape == (3, 5)
        failing = [
            lambda: OPU(f"{server.url}?token={WRONG}", n_components=5, progress=False, timeout_s=2).open(),
            lambda: OPU(f"{url}&retries=-1", n_components=5, progress=False),
            lambda: OPU(f"{url}&bogus=1", n_components=5, progress=False),
            lambda: OPU(f"{url}&retries=1&retries=2", n_components=5, progress=False),
            lambda: OPU(f"socket://127.0.0.1:1?token={TOKEN}", n_components=5, progress=False, timeout_s=0.5).open(),
            lambda: OPU(url, n_components=10**6, progress=False, timeout_s=2).open(),
            lambda: OPU(url, n_components=5, progress=False, timeout_s=2).transform(np.ones((2, 6))),
        ]
        for attempt in failing:
            with pytest.raises((OPUError, ValueError)) as info:
                attempt()
            shown += texts(info.value)
    finally:
        server.close()
    logged = [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    assert len(shown) > 10 and logged
    for text in shown + logged:
        assert TOKEN not in text and WRONG not in text, text


def test_serving_beyond_loopback_without_tls_warns(caplog):
    caplog.set_level(logging.WARNING)
    server = SharingServer(DEVICE, TOKEN, host="0.0.0.0")
    try:
        warned = [r for r in caplog.records if r.levelno == logging.WARNING and "TLS" in r.getMessage()]
        assert warned and "0.0.0.0" in warned[0].getMessage()
    finally:
        server.close()
    caplog.clear()
    SharingServer(DEVICE, TOKEN).close()  # loopback: no warning
    assert not [r for r in caplog.records if "TLS" in r.getMessage()]
