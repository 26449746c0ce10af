"""Does SimCLR pretraining help on the digits? The issue's protocol, through the `lit` command, per seed:

1. `lit fit --config configs/digits_simclr.yaml --seed_everything S` (wall time measured), then the kNN
   accuracy (k=20, cosine) of its frozen best-checkpoint features on the test split, two ways:
   `test/knn_acc` of the run (memory bank: the training split) and scikit-learn's `KNeighborsClassifier`
   with every non-test image as the bank (the reference protocol: raw pixels score 0.967 there);
2. `lit fit --config configs/digits_finetune.yaml --model.backbone_ckpt <1's best.ckpt> --seed_everything S`
   and the same config without `--model.backbone_ckpt` (scratch): test accuracy with 10% of the training
   labels (and any other `--label-fractions`; the subset is fixed by the data's seed, the same for both).

    python bench/digits_simclr.py [--seeds 1 2 3] [--label-fractions 0.1 0.01] [--root runs/bench_digits_simclr]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


LIT_ARGS: list[str] = []


def lit_fit(config: str, root: Path, name: str, seed: int, *extra: str, reuse: bool = False) -> tuple[Path, float]:
    """Run folder and wall seconds of one `lit fit`; with ``reuse``, those of an earlier run of ``name``."""
    timings = root / "wall_seconds.json"
    done = json.loads(timings.read_text()) if timings.is_file() else {}
    if reuse and name in done:
        return Path(done[name]["run"]), done[name]["seconds"]
    lit = Path(sys.executable).parent / "lit"
    command = [str(lit), "fit", "--config", str(CONFIGS / config), "--seed_everything", str(seed), "--name", name,
               "--trainer.default_root_dir", str(root), "--trainer.logger", "false", *extra, *LIT_ARGS]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    runs = sorted((root / name).glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
    timings.write_text(json.dumps({**done, name: {"run": str(runs[-1]), "seconds": seconds}}, indent=1))
    return runs[-1], seconds


def metrics(run: Path) -> dict[str, float]:
    return json.loads((run / "summary.json").read_text())["metrics"]


def reference_knn(checkpoint: Path, k: int = 20) -> float:
    """kNN test accuracy with every non-test image as the bank (80/20 stratified split, seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    from lit_mlcourse.models import SimCLR

    digits = load_digits()
    rest, test = train_test_split(np.arange(len(digits.target)), test_size=0.2, stratify=digits.target, random_state=0)
    model = SimCLR.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    with torch.no_grad():
        features = model(torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)).numpy()
    knn = KNeighborsClassifier(k, metric="cosine").fit(features[rest], digits.target[rest])
    return knn.score(features[test], digits.target[test])


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} +- {statistics.pstdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--label-fractions", type=float, nargs="+", default=[0.1])
    parser.add_argument("--root", type=Path, default=Path("runs/bench_digits_simclr"))
    parser.add_argument("--reuse", action="store_true", help="reuse the pretraining runs of an earlier call")
    parser.add_argument("--lit-args", default="", help="appended to every `lit fit`, e.g. '--trainer.max_epochs 2'")
    args = parser.parse_args()
    fractions = args.label_fractions
    LIT_ARGS.extend(shlex.split(args.lit_args))
    print(f"python bench/digits_simclr.py --seeds {' '.join(map(str, args.seeds))} "
          f"--label-fractions {' '.join(map(str, fractions))}  ({os.cpu_count()} CPUs)")  # fmt: skip
    rows = []
    for seed in args.seeds:
        pretrained, seconds = lit_fit("digits_simclr.yaml", args.root, f"simclr_s{seed}", seed, reuse=args.reuse)
        best = pretrained / "checkpoints" / "best.ckpt"
        row = {"seed": seed, "pretrain_s": seconds, "knn_run": metrics(pretrained)["test/knn_acc"]}
        row["knn_reference"] = reference_knn(best)
        for fraction in fractions:
            labels = ["--data.label_fraction", str(fraction)]
            finetuned, _ = lit_fit("digits_finetune.yaml", args.root, f"finetune_{fraction}_s{seed}", seed, *labels,
                                   "--model.backbone_ckpt", str(best))  # fmt: skip
            scratch, _ = lit_fit("digits_finetune.yaml", args.root, f"scratch_{fraction}_s{seed}", seed, *labels)
            row[f"finetune {fraction}"] = metrics(finetuned)["test/acc"]
            row[f"scratch {fraction}"] = metrics(scratch)["test/acc"]
        rows.append(row)
        print(f"seed {seed}: " + ", ".join(f"{key} {value:.4f}" for key, value in row.items() if key != "seed"),
              flush=True)  # fmt: skip
    columns = [key for key in rows[0] if key != "seed"]
    print("\n| seed | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for row in rows:
        print(f"| {row['seed']} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |")
    print("| mean +- std | " + " | ".join(mean_std([row[c] for row in rows]) for c in columns) + " |")
    print("(pretrain_s: wall seconds of `lit fit`; knn_run: test/knn_acc, bank = training split; knn_reference: "
          "bank = every non-test image)")  # fmt: skip
    for fraction in fractions:
        gain = [row[f"finetune {fraction}"] - row[f"scratch {fraction}"] for row in rows]
        print(f"label_fraction {fraction}: fine-tune - scratch = {100 * statistics.mean(gain):+.2f} +- "
              f"{100 * statistics.pstdev(gain):.2f} accuracy points")  # fmt: skip


if __name__ == "__main__":
    main()
