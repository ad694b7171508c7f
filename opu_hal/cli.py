"""The ``opu-hal`` command line: ``info``, ``demo``, ``selftest``, ``calibrate``, ``serve``, ``bench``, ``urls``.

A device or argument error ends the command with exit code 1 and one line on stderr naming
the subcommand and the error (``-v`` shows the traceback too); Ctrl-C ends it with 130.
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
        print(json.dumps(report, indent=2))
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
    )
    print(f"serving {mask_url(args.device)} on {server.url}?token={token}", flush=True)
    serve_until_signalled(server)
    return 0


def _urls(args: argparse.Namespace) -> int:
    from .url import keys_table

    print(keys_table())
    return 0


def _demo(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

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
        rng = np.random.default_rng(args.seed)
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
        image = cv2.normalize(frame.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        out = Path(args.out)
        if not cv2.imwrite(str(out), image):
            print(f"could not write {out}", file=sys.stderr)
            return 1
        print(f"wrote one raw camera frame ({width_rows} x {sensor_width} px) to {out}")
    return 0


def _selftest(args: argparse.Namespace) -> int:
    from .record import CalibrationRecord
    from .selftest import SelftestConfig, format_table, run_selftest

    config = SelftestConfig(n_components=args.n_components, n_features=args.n_features, batch=args.batch)
    record = CalibrationRecord.load(args.record) if args.record else None
    results = run_selftest(args.device, config, timeout_s=args.timeout_s, record=record)
    print(format_table(results))
    return 1 if any(r.status == "fail" for r in results) else 0


def _calibrate(args: argparse.Namespace) -> int:
    from calibration.pipeline import calibrate_all
    from calibration.report import write_report

    from .opu import OPU

    with OPU(args.device, n_components=args.n_components, seed=args.seed, timeout_s=args.timeout_s) as opu:
        opu.fit1d(n_features=args.n_features)
        record = calibrate_all(opu, tm=not args.no_tm, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = record.save(out)
    plots = write_report(record, out)
    print(f"calibration {record.id} of {record.device.serial}: {sum(record.frames_spent.values())} frames")
    if record.camera is not None:
        cam = record.camera
        print(f"  camera: K = {cam.gain_dn_per_e:.4f} DN/e-, read noise {cam.read_noise_e:.1f} e- "
              f"({cam.read_noise_source}), saturation {cam.saturation_capacity_e:.0f} e-, "
              f"linearity error {cam.linearity_error_pct:.2f} %")
    if record.exposure is not None:
        exp = record.exposure
        print(f"  exposure: {exp.exposure_us:.1f} us, {exp.frame_rate_hz:,.0f} frames/s, "
              f"{exp.acquisitions} acquisitions, saturated {exp.saturated_fraction:.1e}")
    lin = record.linear
    print(f"  linear ({lin.scheme}): {lin.n_components} of {lin.n_candidates} pixels at {lin.exposure_us:.1f} us, "
          f"repeatability error {lin.noise_rel:.2%}")
    if record.tm is not None:
        print(f"  transmission matrix: intensity correlation {record.tm['intensity_correlation']:.4f} on fresh inputs, "
              f"{record.tm['frames_per_feature']:.1f} frames per feature, {record.tm['compute_seconds']:.1f} s of computation")
    print(f"wrote {json_path}, {json_path.with_suffix('.npz')} and {len(plots)} plots in {out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    """Run a suite of the ``benchmarks`` package (installed with opu-hal; ``dfa`` needs a checkout's examples)."""
    try:
        if args.suite == "dfa":
            from benchmarks.dfa import main as suite_main
        else:
            from benchmarks.randnla import main as suite_main
    except ImportError as exc:
        print(f"opu-hal bench {args.suite}: cannot load benchmarks.{args.suite}: {exc}", file=sys.stderr)
        return 2
    return suite_main(args.options)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``opu-hal``."""
    parser = argparse.ArgumentParser(
        prog="opu-hal", description="Drive an optical processing unit (or its emulation).",
        epilog="Devices are URLs such as emu://?seed=3 or socket://HOST:PORT?token=...; `opu-hal urls` lists them all.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="print what the device says about itself")
    info.add_argument("device", nargs="?", default="emu://", help="device URL (default emu://)")
    info.add_argument("--timeout-s", type=float, default=10.0, help="seconds to wait for the device")
    info.set_defaults(func=_info)

    demo = sub.add_parser("demo", help="transform a random batch and save one camera frame as PNG")
    demo.add_argument("--device", default="emu://", help="device URL (default emu://)")
    demo.add_argument("--seed", type=int, default=0, help="seed of an emulated device and of the inputs")
    demo.add_argument("--n-features", type=int, default=1024, help="input features")
    demo.add_argument("--rows", type=int, default=40, help="camera rows read (outputs = rows x sensor width)")
    demo.add_argument("--batch", type=int, default=200, help="inputs in the batch")
    demo.add_argument("--out", default="opu_frame.png", help="PNG file for one raw camera frame")
    demo.set_defaults(func=_demo)

    selftest = sub.add_parser("selftest", help="check a device after switch-on: pass/fail table, exit code 1 on failure")
    selftest.add_argument("device", nargs="?", default="emu://", help="device URL (default emu://)")
    selftest.add_argument("--n-components", type=int, default=1000, help="outputs per test frame")
    selftest.add_argument("--n-features", type=int, default=1000, help="features per test input")
    selftest.add_argument("--batch", type=int, default=100, help="frames per test batch")
    selftest.add_argument("--timeout-s", type=float, default=10.0, help="seconds to wait for the device")
    selftest.add_argument("--record", default=None, help="calibration record of this device: its camera offset is the dark-level reference")
    selftest.set_defaults(func=_selftest)

    calibrate = sub.add_parser("calibrate", help="calibrate a device: camera, exposure, linear projections, transmission matrix; save record and plots")
    calibrate.add_argument("device", nargs="?", default="emu://", help="device URL (default emu://)")
    calibrate.add_argument("--out", required=True, help="directory for calibration.json/.npz and the PNG report")
    calibrate.add_argument("--n-features", type=int, default=1000, help="features of the linear calibration")
    calibrate.add_argument("--n-components", type=int, default=500, help="outputs of the linear calibration")
    calibrate.add_argument("--seed", type=int, default=None, help="seed of an emulated device")
    calibrate.add_argument("--timeout-s", type=float, default=10.0, help="seconds to wait for the device")
    calibrate.add_argument("--no-tm", action="store_true", help="skip the transmission-matrix retrieval (~28 frames/feature)")
    calibrate.set_defaults(func=_calibrate)

    serve = sub.add_parser("serve", help="share one device with several clients over TCP (token required)")
    serve.add_argument("device", nargs="?", default="emu://", help="device URL to share (default emu://)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=5555, help="TCP port (0: any free port)")
    serve.add_argument("--token", help="shared secret clients must send (default: $OPU_HAL_TOKEN, else a random one)")
    serve.add_argument("--max-clients", type=int, default=4, help="clients connected at once")
    serve.add_argument("--max-message-mb", type=float, default=64.0, help="largest message accepted (MiB)")
    serve.add_argument("--timeout-s", type=float, default=10.0, help="seconds to wait for the device")
    serve.set_defaults(func=_serve)

    bench = sub.add_parser("bench", help="run a benchmark suite and print its figures")
    bench.add_argument("suite", choices=["randnla", "dfa"], help="benchmark suite")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options of the suite (opu-hal bench SUITE --help)")
    bench.set_defaults(func=_bench)
    urls = sub.add_parser("urls", help="print the device URL schemes and their query keys (Markdown tables)")
    urls.set_defaults(func=_urls)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``opu-hal`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (OPUError, ValueError, TypeError, OSError) as exc:
        if args.verbose:
            raise
        print(f"opu-hal {args.command}: error: {exc} (-v shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"opu-hal {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
