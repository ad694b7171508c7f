"""TLS for ``opu-hal serve`` and the firmware's TCP host: ``sockets://`` (or ``socket://...?tls=1``).

A self-signed certificate is made at test time with the ``openssl`` command, as docs/protocol.md
tells users to; a client trusts it with ``?ca=PATH``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from opu_hal import OPU, OPUError, TLSError
from opu_hal.sharing import SharingServer
from opu_hal.url import resolve_url
from firmware_sim.firmware import Firmware
from firmware_sim.hosting import TCPFirmwareServer
from firmware_sim.params import params_from_query

DEVICE = "emu://?seed=4&fidelity=ideal&dmd_shape=20x24&camera_shape=10x30"
TOKEN = "correct-horse-battery"
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command makes the test certificates")


def make_certificate(folder: Path, name: str, names: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` and its key (the command docs/protocol.md shows)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    return {
        "server": make_certificate(folder, "server", "DNS:localhost,IP:127.0.0.1"),
        "stranger": make_certificate(folder, "stranger", "DNS:elsewhere.example"),
    }


@pytest.fixture
def tls_server(certs):
    cert, key = certs["server"]
    server = SharingServer(DEVICE, TOKEN, tls_cert=cert, tls_key=key, auth_timeout_s=1).start()
    yield server
    server.close()


def transform(url: str, x: np.ndarray, **options) -> np.ndarray:
    with OPU(url, n_components=40, progress=False, **options) as opu:
        opu.fit1d(n_features=x.shape[1])
        return np.asarray(opu.transform(x))


X = np.random.default_rng(3).random((30, 12)) < 0.5


def test_the_openssl_command_is_present_here():
    assert OPENSSL is not None  # the tests of this module must run, not be skipped, on this machine


@pytest.mark.parametrize("form", ["sockets://{host}:{port}?ca={ca}", "socket://{host}:{port}?tls=1&ca={ca}"])
def test_serve_over_tls_gives_the_plain_result(tls_server, certs, form):
    host, port = tls_server.address
    assert tls_server.url == f"sockets://{host}:{port}"
    url = form.format(host=host, port=port, ca=certs["server"][0]) + f"&token={TOKEN}"
    np.testing.assert_array_equal(transform(url, X), transform(DEVICE, X))


def test_a_pipelined_multi_chunk_transform_over_tls_gives_the_plain_result(tls_server, certs):
    """Chunks in flight (window 3) while replies are read: TLS read and writes from several threads at once."""
    x = np.random.default_rng(5).random((300, 12)) < 0.5
    url = f"{tls_server.url}?ca={certs['server'][0]}&token={TOKEN}&chunk_frames=8&window=3"
    settings = {"max_batch_frames": 100}
    np.testing.assert_array_equal(transform(url, x, settings=settings), transform(DEVICE, x, settings=settings))


def test_the_host_name_is_checked_unless_told_otherwise(tls_server, certs):
    port = tls_server.address[1]
    ca = certs["server"][0]
    np.testing.assert_array_equal(transform(f"sockets://localhost:{port}?ca={ca}&token={TOKEN}", X), transform(DEVICE, X))
    cert, key = certs["stranger"]  # issued to elsewhere.example only
    other = SharingServer(DEVICE, TOKEN, tls_cert=cert, tls_key=key).start()
    try:
        url = f"sockets://127.0.0.1:{other.address[1]}?ca={cert}&token={TOKEN}"
        with pytest.raises(TLSError, match="certificate.*mismatch"):
            OPU(url, n_components=5, timeout_s=2).open()
        np.testing.assert_array_equal(transform(f"{url}&check_hostname=0", X), transform(DEVICE, X))
    finally:
        other.close()


def test_firmware_host_serves_tls(certs):
    cert, key = certs["server"]
    params = params_from_query({"seed": "4", "fidelity": "ideal", "dmd_shape": "20x24", "camera_shape": "10x30"})
    server = TCPFirmwareServer(Firmware(params), tls_cert=cert, tls_key=key).start()
    try:
        assert server.url.startswith("sockets://127.0.0.1:")
        y = transform(f"{server.url}?ca={cert}", X)
    finally:
        server.close()
        server.firmware.close()
    np.testing.assert_array_equal(y, transform(DEVICE, X))


def test_a_plain_client_against_a_tls_server_fails_clearly_and_soon(tls_server):
    url = f"socket://{tls_server.address[0]}:{tls_server.address[1]}?token={TOKEN}&retries=1"
    start = time.monotonic()
    with pytest.raises(OPUError, match="TLS") as info:
        OPU(url, n_components=5, timeout_s=2).open()
    assert time.monotonic() - start < 2 * 2 + 1  # (retries + 1) x timeout, not a hang
    assert TOKEN not in str(info.value)


def test_a_tls_client_against_a_plain_server_fails_clearly_and_soon(certs):
    server = SharingServer(DEVICE, TOKEN).start()
    try:
        url = f"sockets://{server.address[0]}:{server.address[1]}?ca={certs['server'][0]}&token={TOKEN}"
        start = time.monotonic()
        with pytest.raises(TLSError, match="TLS") as info:
            OPU(url, n_components=5, timeout_s=2).open()
        assert time.monotonic() - start < 2 + 1
    finally:
        server.close()
    assert "sockets://" in str(info.value) and TOKEN not in str(info.value) and "token=***" in str(info.value)


def test_a_wrong_ca_fails_with_a_certificate_error_naming_the_url(tls_server, certs):
    url = f"sockets://{tls_server.address[0]}:{tls_server.address[1]}?ca={certs['stranger'][0]}&token={TOKEN}"
    with pytest.raises(TLSError, match="certificate") as info:
        OPU(url, n_components=5, timeout_s=2).open()
    message = str(info.value)
    assert f"sockets://{tls_server.address[0]}:{tls_server.address[1]}" in message
    assert TOKEN not in message and "token=***" in message


def test_no_warning_when_serving_beyond_loopback_with_tls(certs, caplog):
    caplog.set_level(logging.WARNING)
    cert, key = certs["server"]
    SharingServer(DEVICE, TOKEN, host="0.0.0.0", tls_cert=cert, tls_key=key).close()
    assert not [r for r in caplog.records if "TLS" in r.getMessage()]


@pytest.mark.parametrize(
    "url, named",
    [
        ("sockets://127.0.0.1:1?tls=0", "tls"),
        ("socket://127.0.0.1:1?ca=/x.pem", "ca"),
        ("sockets://127.0.0.1:1?ca=/does/not/exist.pem", "ca"),
    ],
)
def test_inconsistent_tls_keys_are_refused_naming_the_key(url, named):
    with pytest.raises(ValueError, match=named):
        resolve_url(url).make_link()


def test_server_refuses_a_missing_key_or_certificate(certs, tmp_path):
    cert, _ = certs["server"]
    with pytest.raises(ValueError, match="tls_cert, tls_key"):
        SharingServer(DEVICE, TOKEN, tls_cert=cert)
    with pytest.raises(ValueError, match="tls_cert, tls_key"):
        SharingServer(DEVICE, TOKEN, tls_cert=cert, tls_key=tmp_path / "missing.key")


def test_serve_command_with_tls(certs):
    import sys

    cert, key = certs["server"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "opu_hal.cli", "serve", DEVICE, "--port", "0", "--token", TOKEN,
         "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = proc.stdout.readline().split(" on ")[1].strip()
        assert url.startswith("sockets://127.0.0.1:") and url.endswith(f"?token={TOKEN}")
        np.testing.assert_array_equal(transform(f"{url}&ca={cert}", X), transform(DEVICE, X))
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_firmware_command_refuses_tls_files_it_cannot_use(certs, tmp_path, capsys):
    from firmware_sim.__main__ import main as firmware_main

    cert, key = certs["server"]
    assert firmware_main(["--pty", "--tls-cert", str(cert), "--tls-key", str(key)]) == 2
    assert "--tls-cert, --tls-key: expected with --listen" in capsys.readouterr().err
    missing = tmp_path / "missing.pem"
    assert firmware_main(["--listen", "127.0.0.1:0", "--tls-cert", str(missing), "--tls-key", str(key)]) == 2
    assert f"tls_cert, tls_key: expected a PEM certificate and its private key, got {str(missing)!r}" in capsys.readouterr().err
