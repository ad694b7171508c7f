"""The ``opu-hal`` command line: ``info`` and ``demo`` (more subcommands come with their issues)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .opu import OPU


def _info(args: argparse.Namespace) -> int:
    with OPU(args.device, n_components=1, timeout_s=args.timeout_s) as opu:
        print(json.dumps(opu.info.model_dump(), indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``opu-hal``."""
    parser = argparse.ArgumentParser(prog="opu-hal", description="Drive an optical processing unit (or its emulation).")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``opu-hal`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
