"""How sure is a digits classifier, as the GAN's judge? Trains `lit fit --config configs/quickstart.yaml` with
each variant's overrides, then prints its test accuracy and the Inception-style score of the real test images
(1 split of 360) and of the real training images (1 split), with the mean entropy of its class probabilities on
the test images. The GAN's score is bounded by these.

    python bench/digits_judge.py "base=" "sharper=--model.optimizer.init_args.lr 0.01 --seed_everything 1"
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_gan import CONFIGS, inception_score, lit_fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help='"name=overrides" for `lit fit` (empty: the quick start)')
    parser.add_argument("--root", type=Path, default=Path("runs/bench_digits_judge"))
    args = parser.parse_args()

    from lit_mlcourse.data import DigitsDataModule
    from lit_mlcourse.models.judges import load_judge

    data = DigitsDataModule()
    data.setup("fit"), data.setup("test")
    train, test = data.datasets["train"].tensors[0], data.datasets["test"].tensors[0]
    print("| variant | test accuracy | real test score | real train score | mean entropy (test) |")
    print("| --- | --- | --- | --- | --- |")
    for variant in args.variants:
        name, _, overrides = variant.partition("=")
        run, _ = lit_fit(args.root, name, "--config", str(CONFIGS / "quickstart.yaml"), *shlex.split(overrides))
        accuracy = json.loads((run / "summary.json").read_text())["metrics"]["test/acc"]
        judge = load_judge(run / "checkpoints" / "best.ckpt", (1, 8, 8))
        with torch.no_grad():
            probabilities = judge(test).softmax(1)
        entropy = float(-(probabilities * probabilities.clamp_min(1e-12).log()).sum(1).mean())
        print(f"| {name} ({overrides or 'as configured'}) | {accuracy:.4f} | {inception_score(judge, test, 1):.3f} | "
              f"{inception_score(judge, train, 1):.3f} | {entropy:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
