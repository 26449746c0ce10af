"""Start-up time of `lit` against the bare Lightning CLI import, measured in the same run.

    python bench/startup.py [--repeats 5]

Runs each command `--repeats` times, interleaved so that machine noise hits all alike, and prints the
median and minimum wall time of each and their ratios to `python -c "import lightning.pytorch.cli"`
(the minimum is the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    commands = {
        "import lightning.pytorch.cli": [sys.executable, "-c", "import lightning.pytorch.cli"],
        "lit --help": [str(BIN / "lit"), "--help"],
        "lit fit --config configs/quickstart.yaml --print_config": [
            str(BIN / "lit"), "fit", "--config", "configs/quickstart.yaml", "--print_config",
        ],
    }  # fmt: skip
    for command in commands.values():  # warm the file cache once
        wall_time(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            times[name].append(wall_time(command))
    base = times["import lightning.pytorch.cli"]
    base_median, base_min = statistics.median(base), min(base)
    print(f"{'command':58s} {'median s':>9s} {'min s':>7s} {'ratio (median)':>15s} {'ratio (min)':>12s}")
    for name, values in times.items():
        median, fastest = statistics.median(values), min(values)
        print(f"{name:58s} {median:9.2f} {fastest:7.2f} {median / base_median:15.2f} {fastest / base_min:12.2f}")


if __name__ == "__main__":
    main()
