"""Wall time of `lit fit --config configs/pm25_mlp.yaml` on the real course data.

    python bench/pm25.py --data_dir ../shared/data/pm25 [--repeats 3] [--config configs/pm25_mlp.yaml]

Prints each run's wall time (process start to exit, start-up included), the median, the training
time per epoch read from the run's output, and the run's best val/rmse.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="../shared/data/pm25")
    parser.add_argument("--config", default="configs/pm25_mlp.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lit = str(Path(sys.executable).parent / "lit")
    walls = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            command = [lit, "fit", "--config", args.config, "--data.data_dir", args.data_dir,
                       "--trainer.default_root_dir", out]  # fmt: skip
            start = time.perf_counter()
            result = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
            wall = time.perf_counter() - start
            walls.append(wall)
            epochs = [float(s) for s in re.findall(r"^epoch \d+/\d+ .*\((\d+\.\d+) s\)$", result.stdout, re.M)]
            summary = json.loads(next(Path(out).rglob("summary.json")).read_text())
            print(
                f"run {repeat}: {wall:.1f} s wall, {len(epochs)} epochs, {statistics.median(epochs):.2f} s/epoch "
                f"(median), best {summary['monitor']} {summary['best_score']:.3f}",
                flush=True,
            )
    print(f"median wall time over {len(walls)} runs: {statistics.median(walls):.1f} s")


if __name__ == "__main__":
    main()
