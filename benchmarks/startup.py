"""Start-up times: ``import opu_hal``, the lightonml shim's star import, ``opu-hal --help``.

Run: ``python benchmarks/startup.py [--repeat N]``. Each command runs N times (default 7)
in a fresh interpreter; the median wall time is printed next to ``python -c pass`` measured
in the same run (the interpreter's own start-up, the reference), with the load average.
Targets (issue 17, on a quiet machine): star import < 0.6 s, ``opu-hal --help`` < 0.35 s.
Nothing here is asserted by the tests.

Measured on 2 shared cores at load average 8-10 (``uptime``), each command 3 times in a
fresh interpreter with ``/usr/bin/time``, this tree against the tree before issue 17 in the
same run: the star import 0.81-0.96 s (before: 9.8-13.1 s), ``opu-hal --help`` 0.16-0.27 s
(before: 1.3-2.1 s). ``python benchmarks/startup.py --repeat 7`` at load 8.2: ``python -c
pass`` 0.149 s, ``import opu_hal`` 0.172 s, star import 1.04 s, ``opu-hal --help`` 0.214 s.
Most of what is left of the star import is numpy and pydantic (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (reference)": [sys.executable, "-c", "pass"],
    "import opu_hal": [sys.executable, "-c", "import opu_hal"],
    "from opu_hal.compat.lightonml import *": [sys.executable, "-c", "from opu_hal.compat.lightonml import *"],
    "import lightonml shim + OPUMap (sklearn)": [sys.executable, "-c", "from opu_hal.compat.lightonml import OPUMap"],
    "opu-hal --help": [sys.executable, "-m", "opu_hal.cli", "--help"],
}
TARGETS_S = {"from opu_hal.compat.lightonml import *": 0.6, "opu-hal --help": 0.35}


def median_wall_s(argv: list[str], repeat: int) -> float:
    """Median wall time (s) of ``repeat`` runs of ``argv``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="runs per command (the median is printed)")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
          f"{os.cpu_count()} CPUs, median of {args.repeat} runs")
    reference = None
    for name, command in COMMANDS.items():
        seconds = median_wall_s(command, args.repeat)
        reference = reference or seconds
        target = f"  target < {TARGETS_S[name]:.2f} s" if name in TARGETS_S else ""
        print(f"{name:<44} {seconds:6.3f} s  ({seconds / reference:4.1f} x python){target}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
