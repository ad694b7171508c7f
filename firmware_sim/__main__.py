"""``python -m firmware_sim``: an emulated OPU on a TCP port or a pseudo-terminal.

    python -m firmware_sim --listen 127.0.0.1:5555 --seed 5 --fidelity ideal
    python -m firmware_sim --pty            # prints the serial port path to open
    python -m firmware_sim --listen 127.0.0.1:5555 --tls-cert cert.pem --tls-key key.pem   # sockets://

Every field of :class:`firmware_sim.EmulatorParams` is an option (``--dmd-shape 912x1140``).
The first line printed is the device URL (``socket://HOST:PORT`` or the pty path).
"""

from __future__ import annotations

import argparse
import logging
import sys

from opu_hal.protocol.device_side import serve_until_signalled

from .faults import FaultSettings
from .firmware import Firmware
from .params import EmulatorParams, params_from_query
from .hosting import PtyFirmwareServer, TCPFirmwareServer


def build_parser() -> argparse.ArgumentParser:
    """Options: where to serve, the emulator's parameters, optics on/off and faults."""
    parser = argparse.ArgumentParser(prog="python -m firmware_sim", description="Serve an emulated OPU.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="HOST:PORT", help="serve on a TCP port (port 0: any free port)")
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal and print its path")
    parser.add_argument("--optics", choices=("on", "off"), default="on", help="off: return frames without computing")
    parser.add_argument("--tls-cert", metavar="PEM", help="with --listen: serve TLS with this certificate (sockets://)")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--faults", metavar="JSON", help="fault injection settings (FaultSettings as JSON)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    params = parser.add_argument_group("emulator parameters (firmware_sim.EmulatorParams)")
    for name, field in EmulatorParams.model_fields.items():
        params.add_argument(f"--{name.replace('_', '-')}", dest=f"param_{name}", metavar="VALUE", help=field.description)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    values = {k[len("param_") :]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    try:
        params = params_from_query(values)
        faults = FaultSettings.model_validate_json(args.faults) if args.faults else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.pty and (args.tls_cert or args.tls_key):
        print("error: --tls-cert, --tls-key: expected with --listen (TLS is for TCP), got --pty", file=sys.stderr)
        return 2
    firmware = Firmware(params, optics=args.optics == "on", faults=faults)
    if args.pty:
        server: PtyFirmwareServer | TCPFirmwareServer = PtyFirmwareServer(firmware)
        print(server.path, flush=True)
    else:
        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit():
            print(f"error: --listen: expected HOST:PORT, got {args.listen!r}", file=sys.stderr)
            return 2
        try:
            server = TCPFirmwareServer(firmware, host, int(port), tls_cert=args.tls_cert, tls_key=args.tls_key)
        except ValueError as exc:
            firmware.close()
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(server.url, flush=True)
    serve_until_signalled(server)
    firmware.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
