"""The ``opu-hal`` command line: ``info``, ``demo``, ``selftest``, ``calibrate``, ``serve``, ``bench``, ``urls``.

One convention: the device URL is the first positional argument of every device command
(``emu://`` by default), ``--help`` shows defaults and choices, numbers are printed with
units, tables fit in 100 columns and ``info``, ``selftest`` and ``calibrate`` take ``--json``.
A usage error (a bad option or value, a malformed URL) ends the command with exit code 2,
a device fault with 1, each with one line on stderr naming the subcommand (``-v`` shows
the traceback too); Ctrl-C ends it with 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .errors import OPUError

# Subcommands import what they need when they run: ``opu-hal --help`` loads argparse only.

USAGE_EXIT = 2
FAULT_EXIT = 1
DEFAULT_DEVICE = "emu://"
TABLE_WIDTH = 100


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``opu-hal SUB: error: ...``) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _natural(text: str) -> int:
    """An argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def human(value: float, unit: str = "") -> str:
    """``value`` with 4 significant digits, thousands separated, and its unit: ``1.071e-06 DN/us``, ``12,000 us``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value} {unit}".rstrip()
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e9):
        text = f"{int(value):,}"
    elif value != 0 and not 1e-3 <= abs(value) < 1e6:
        text = f"{value:.4g}"
    else:
        text = f"{value:,.4g}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{text} {unit}".rstrip()


#: Rows of ``opu-hal info``: (label, DeviceInfo field or ``limits.`` field, unit).
_INFO_ROWS = (
    ("model", "model", ""), ("serial", "serial", ""), ("firmware", "firmware_version", ""),
    ("protocol", "protocol_version", ""), ("fidelity", "fidelity", ""), ("medium", "medium", ""),
    ("DMD", "dmd_shape", "mirrors"), ("camera", "camera_shape", "px"), ("bit depth", "bit_depth", "bits"),
    ("default exposure", "default_exposure_us", "us"), ("dark level", "dark_level_dn", "DN"),
    ("dark current", "dark_current_dn_per_us", "DN/us"),
    ("gain", "dn_per_intensity_per_us", "DN/us per unit of |Rx|^2"),
    ("max outputs", "limits.max_n_components", "px"), ("max features", "limits.max_n_features", "mirrors"),
    ("exposure range", "limits.min_exposure_us", "us"), ("max batch", "limits.max_batch_frames", "frames"),
)


def _info_lines(info: object, handshake: dict[str, object] | None) -> list[str]:
    rows = []
    for label, field, unit in _INFO_ROWS:
        if field.startswith("limits."):
            value = getattr(info.limits, field.split(".", 1)[1])  # type: ignore[attr-defined]
        else:
            value = getattr(info, field)
        if field == "limits.min_exposure_us":
            text = f"{human(value)} to {human(info.limits.max_exposure_us, unit)}"  # type: ignore[attr-defined]
        elif isinstance(value, tuple):
            text = f"{value[0]:,} x {value[1]:,} {unit}"
        else:
            text = human(value, unit)
        rows.append((label, text))
    for key, value in (handshake or {}).items():
        unit = "bytes" if key == "max_payload" else ""
        rows.append((f"handshake {key.replace('_', ' ')}", human(value, unit)))
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {text}" for label, text in rows]


def _info(args: argparse.Namespace) -> int:
    from .opu import OPU

    with OPU(args.device, n_components=1, timeout_s=args.timeout_s) as opu:
        report = opu.info.model_dump(mode="json")
        hello = getattr(opu.backend, "hello", None)  # devices behind the wire protocol: the whole handshake
        if hello is not None:
            report["handshake"] = {
                "protocol_version": hello.protocol_version,
                "firmware_version": hello.firmware_version,
                "boot_id": hello.boot_id,
                "max_payload": hello.max_payload,
                "max_in_flight": hello.max_in_flight,
                **hello.extra,
            }
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print("\n".join(_info_lines(opu.info, report.get("handshake"))))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os
    import secrets

    from .protocol.device_side import serve_until_signalled
    from .sharing import SharingServer
    from .url import mask_url

    token = args.token or os.environ.get("OPU_HAL_TOKEN") or secrets.token_urlsafe(16)
    server = SharingServer(
        args.device, token, host=args.host, port=args.port, max_clients=args.max_clients,
        max_payload=int(args.max_message_mb * 2**20), timeout_s=args.timeout_s,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
    )
    print(f"serving {mask_url(args.device)} on {server.url}?token={token}", flush=True)
    serve_until_signalled(server)
    return 0


def _urls(args: argparse.Namespace) -> int:
    from .url import keys_table

    print(keys_table())
    return 0


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from calibration.report import frame_figure

    from .opu import OPU

    width_rows = args.rows
    with OPU(args.device, n_components=1, seed=args.seed, progress=False) as opu:
        sensor_width = opu.info.camera_shape[1]
        opu.n_components = sensor_width * width_rows
        print(f"device: {opu.info.model}, serial {opu.info.serial}, firmware {opu.info.firmware_version}")
        print(f"  DMD {opu.info.dmd_shape[0]} x {opu.info.dmd_shape[1]} mirrors, camera "
              f"{opu.info.camera_shape[0]} x {opu.info.camera_shape[1]} px, {opu.info.bit_depth}-bit, {opu.info.fidelity}")
        t0 = time.perf_counter()
        opu.fit1d(n_features=args.n_features)
        fit_s = time.perf_counter() - t0
        rng = np.random.default_rng(args.seed or 0)
        x = rng.random((args.batch, args.n_features)) < 0.5
        t0 = time.perf_counter()
        y = opu.transform(x)
        wall_s = time.perf_counter() - t0
        ctx = y.context
        print(f"fit1d: {args.n_features} features on {ctx.input_roi[2]} x {ctx.input_roi[3]} mirrors "
              f"(macro-pixel {ctx.macro_pixel}), {opu.n_components} outputs on a {ctx.output_roi[2]}-row ROI ({fit_s:.2f} s)")
        print(f"transform: {args.batch} inputs -> {y.shape} {y.dtype} in {wall_s:.3f} s "
              f"({args.batch / wall_s:,.0f} rows/s on this host)")
        print(f"  exposure {ctx.exposure_us:.0f} us, frametime {ctx.frametime_us:.0f} us: a real OPU would take "
              f"{ctx.device_time_s * 1e3:.1f} ms ({1e6 / ctx.frametime_us:,.0f} frames/s)")
        print(f"  mean count {float(y.mean()):.1f} DN, saturated fraction {ctx.saturated_fraction:.1e}")
        frame = np.asarray(y[0]).reshape(width_rows, sensor_width)
        provenance = f"{opu.info.model} {opu.info.serial} · {opu.device} · exposure {ctx.exposure_us:g} us · " \
                     f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}"
        out = frame_figure(frame, f"One camera frame: {width_rows} x {sensor_width} px", provenance, args.out)
        print(f"wrote one camera frame ({width_rows} x {sensor_width} px, contrast-stretched, colour bar in DN) "
              f"to {out}")
    return 0


def _selftest(args: argparse.Namespace) -> int:
    from .record import CalibrationRecord
    from .selftest import SelftestConfig, format_table, run_selftest

    config = SelftestConfig(n_components=args.n_components, n_features=args.n_features, batch=args.batch)
    record = CalibrationRecord.load(args.record) if args.record else None
    results = run_selftest(args.device, config, timeout_s=args.timeout_s, record=record)
    failed = any(r.status == "fail" for r in results)
    if args.json:
        checks = [{"name": r.name, "status": r.status, "measured": r.measured, "expected": r.expected} for r in results]
        print(json.dumps({"device": args.device, "passed": not failed, "checks": checks}, indent=2))
    else:
        print(format_table(results, width=TABLE_WIDTH))
    return FAULT_EXIT if failed else 0


def _calibrate(args: argparse.Namespace) -> int:
    from calibration.pipeline import calibrate_all
    from calibration.report import write_report

    from .opu import OPU

    with OPU(args.device, n_components=args.n_components, seed=args.seed, timeout_s=args.timeout_s) as opu:
        opu.fit1d(n_features=args.n_features)
        record = calibrate_all(opu, tm=not args.no_tm, progress=not args.json)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = record.save(out)
    plots = write_report(record, out)
    summary = calibration_summary(record)
    summary["files"] = [str(json_path), str(json_path.with_suffix(".npz")), *map(str, plots)]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"calibration {record.id} of {record.device.serial}: {human(summary['frames'], 'frames')}")
    stages = summary["stages"]
    if "camera" in stages:
        cam = stages["camera"]
        print(f"  camera: K = {cam['gain_dn_per_e']:.4f} DN/e-, read noise {cam['read_noise_e']:.1f} e- "
              f"({cam['read_noise_source']}), saturation {human(round(cam['saturation_capacity_e']), 'e-')}, "
              f"linearity error {cam['linearity_error_pct']:.2f} %, photon transfer at "
              f"{human(min(cam['exposures_us']))} to {human(max(cam['exposures_us']), 'us')}")
    if "exposure" in stages:
        exp = stages["exposure"]
        print(f"  exposure: {human(exp['exposure_us'], 'us')} (auto-exposure), "
              f"{human(round(exp['frame_rate_hz']), 'frames/s')}, "
              f"{exp['acquisitions']} acquisitions, saturated {exp['saturated_fraction']:.1e}")
    lin = stages["linear"]
    print(f"  linear ({lin['scheme']}): {lin['n_components']} of {lin['n_candidates']} pixels at "
          f"{human(lin['exposure_us'], 'us')}, repeatability error {lin['noise_rel']:.2%}")
    if "tm" in stages:
        tm = stages["tm"]
        print(f"  transmission matrix: intensity correlation {tm['intensity_correlation']:.4f} on fresh inputs, "
              f"{tm['frames_per_feature']:.1f} frames per feature, {tm['compute_seconds']:.1f} s of computation")
    in_effect = summary["exposure_in_effect_us"]
    source = "auto-exposure" if "exposure" in stages else "settings"
    transform_exposure = "the device default" if in_effect["transform"] is None else \
        f"{human(in_effect['transform'], 'us')} ({source})"
    print(f"  in effect: transform at {transform_exposure}, linear_transform from "
          f"{human(in_effect['linear_transform'], 'us')} (linear calibration)")
    print(f"wrote {json_path}, {json_path.with_suffix('.npz')}, {len(plots)} plots and report.html in {out}")
    return 0


def calibration_summary(record: object) -> dict[str, object]:
    """What ``opu-hal calibrate`` reports: id, device, frames spent and each stage's figures (units in the keys)."""
    stages: dict[str, dict[str, object]] = {}
    if record.camera is not None:  # type: ignore[attr-defined]
        stages["camera"] = record.camera.model_dump(mode="json")  # type: ignore[attr-defined]
    if record.exposure is not None:  # type: ignore[attr-defined]
        stages["exposure"] = record.exposure.model_dump(  # type: ignore[attr-defined]
            mode="json", exclude={"history", "histogram_before", "histogram_after"})
    stages["linear"] = record.linear.model_dump(mode="json")  # type: ignore[attr-defined]
    if record.tm is not None:  # type: ignore[attr-defined]
        stages["tm"] = dict(record.tm)  # type: ignore[attr-defined]
    return {
        "id": record.id,  # type: ignore[attr-defined]
        "serial": record.device.serial,  # type: ignore[attr-defined]
        "frames": sum(record.frames_spent.values()),  # type: ignore[attr-defined]
        "stages": stages,
        # transform runs at the settings' exposure (auto-exposure's when it ran); linear_transform
        # starts at its calibration's exposure (shorter when frames saturate)
        "exposure_in_effect_us": {
            "transform": record.settings.get("exposure_us"),  # type: ignore[attr-defined]
            "linear_transform": record.linear.exposure_us,  # type: ignore[attr-defined]
        },
    }


def _bench(args: argparse.Namespace) -> int:
    """Run a suite of the ``benchmarks`` package (installed with opu-hal; ``dfa`` needs a checkout's examples)."""
    try:
        if args.suite == "dfa":
            from benchmarks.dfa import main as suite_main
        elif args.suite == "protocol":
            from benchmarks.protocol import main as suite_main
        else:
            from benchmarks.randnla import main as suite_main
    except ImportError as exc:
        print(f"opu-hal bench {args.suite}: cannot load benchmarks.{args.suite}: {exc}", file=sys.stderr)
        return 2
    return suite_main(args.options)


def _device_argument(parser: argparse.ArgumentParser, what: str = "device URL") -> None:
    parser.add_argument("device", nargs="?", default=DEFAULT_DEVICE, help=f"{what} (opu-hal urls lists the schemes)")


def _timeout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout-s", type=_seconds, default=10.0, help="seconds to wait for the device")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``opu-hal``."""
    parser = _Parser(
        prog="opu-hal", description="Drive an optical processing unit (or its emulation).",
        epilog="Devices are URLs such as emu://?seed=3 or socket://HOST:PORT?token=...; `opu-hal urls` lists them all.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level, tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,demo,selftest,calibrate,serve,bench,urls}")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    info = command("info", "print what the device says about itself (and the wire handshake)")
    _device_argument(info)
    _timeout_argument(info)
    info.add_argument("--json", action="store_true", help="print the full report as JSON, exact values")
    info.set_defaults(func=_info)

    demo = command("demo", "transform a random batch and save one camera frame as PNG")
    _device_argument(demo)
    demo.add_argument("--seed", type=_natural, default=None,
                      help="seed of an emulated device (default: the URL's, else 0) and of the inputs (default 0)")
    demo.add_argument("--n-features", type=_count, default=1024, help="input features")
    demo.add_argument("--rows", type=_count, default=40, help="camera rows read (outputs = rows x sensor width)")
    demo.add_argument("--batch", type=_count, default=200, help="inputs in the batch")
    demo.add_argument("--out", default="opu_frame.png", help="PNG file for one camera frame")
    demo.set_defaults(func=_demo)

    selftest = command("selftest", "check a device after switch-on: pass/fail table, exit code 1 on failure")
    _device_argument(selftest)
    selftest.add_argument("--n-components", type=_count, default=1000, help="outputs per test frame")
    selftest.add_argument("--n-features", type=_count, default=1000, help="features per test input")
    selftest.add_argument("--batch", type=_count, default=100, help="frames per test batch")
    _timeout_argument(selftest)
    selftest.add_argument("--record", default=None,
                          help="calibration record of this device: its camera offset is the dark-level reference")
    selftest.add_argument("--json", action="store_true", help="print the checks as JSON")
    selftest.set_defaults(func=_selftest)

    calibrate = command("calibrate", "calibrate a device: camera, exposure, linear projections, transmission "
                                     "matrix; save the record and plots")
    _device_argument(calibrate)
    calibrate.add_argument("--out", required=True, help="directory for calibration.json/.npz and the PNG report")
    calibrate.add_argument("--n-features", type=_count, default=1000, help="features of the linear calibration")
    calibrate.add_argument("--n-components", type=_count, default=500, help="outputs of the linear calibration")
    calibrate.add_argument("--seed", type=_natural, default=None, help="seed of an emulated device")
    _timeout_argument(calibrate)
    calibrate.add_argument("--no-tm", action="store_true",
                           help="skip the transmission-matrix retrieval (~28 frames per feature)")
    calibrate.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    calibrate.set_defaults(func=_calibrate)

    serve = command("serve", "share one device with several clients over TCP (token required)")
    _device_argument(serve, "device URL to share")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback: this machine only)")
    serve.add_argument("--port", type=_natural, default=5555, help="TCP port (0: any free port)")
    serve.add_argument("--token", help="shared secret clients must send (default: $OPU_HAL_TOKEN, else a random one)")
    serve.add_argument("--max-clients", type=_count, default=4, help="clients connected at once")
    serve.add_argument("--tls-cert", metavar="PEM", help="serve TLS (sockets://) with this certificate (chain)")
    serve.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    serve.add_argument("--max-message-mb", type=float, default=64.0, help="largest message accepted (MiB)")
    _timeout_argument(serve)
    serve.set_defaults(func=_serve)

    bench = command("bench", "run a benchmark suite and print its figures")
    bench.add_argument("suite", choices=["randnla", "dfa", "protocol"], help="benchmark suite")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options of the suite (opu-hal bench SUITE --help)")
    bench.set_defaults(func=_bench)
    urls = command("urls", "print the device URL schemes and their query keys (Markdown tables)")
    urls.set_defaults(func=_urls)
    parser.commands = dict(sub.choices)  # type: ignore[attr-defined]
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``opu-hal`` command: 0 on success, 1 on a device fault, 2 on a usage error."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # reported by the subcommand's parser, whose options they were meant to be
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extras)}")  # type: ignore[attr-defined]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (OPUError, OSError) as exc:  # the device (or the link to it) failed
        return _fail(args, exc, FAULT_EXIT)
    except (ValueError, TypeError) as exc:  # what was asked cannot be done: an argument, a URL, a record
        return _fail(args, exc, USAGE_EXIT)
    except KeyboardInterrupt:
        print(f"opu-hal {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, exc: BaseException, code: int) -> int:
    if args.verbose:
        raise exc
    message = " ".join(str(exc).split())  # one line
    print(f"opu-hal {args.command}: error: {message} (-v shows the traceback)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
