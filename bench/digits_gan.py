"""The digits GAN judged by the quick-start classifier, through the `lit` command (the issue's protocol):

1. `lit fit --config configs/quickstart.yaml` (the judge; or `--judge` an existing best.ckpt);
2. per seed, `lit fit --config configs/digits_gan.yaml --model.judge <judge> --seed_everything S` (wall time);
3. 2,000 images from its best checkpoint (by val/fid): the Inception-style score with the judge's classes,
   the share of each class (the judge's argmax; mode collapse shows here), and the FID in the judge's features
   against the real test images, beside the same scores of the real images: FID(real train, real test) and the
   score of the real test images.

4. with ``--more-judges``: the same samples' score by other digits classifiers (other seeds of the quick start),
   beside the real test images' score by each: how much the figure owes to one judge.

    python bench/digits_gan.py [--seeds 1 2 3] [--judge runs/quickstart/version_0/checkpoints/best.ckpt]
                               [--more-judges J1 J2 ...] [--reuse]
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

import torch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def lit_fit(root: Path, name: str, *args: str) -> tuple[Path, float]:
    lit = Path(sys.executable).parent / "lit"
    command = [str(lit), "fit", *args, "--name", name, "--trainer.default_root_dir", str(root)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    runs = sorted((root / name).glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
    return runs[-1], seconds


def inception_score(judge, images: torch.Tensor, splits: int) -> float:
    from torchmetrics.image.inception import InceptionScore

    metric = InceptionScore(judge, splits=splits)
    metric.update(images)
    with torch.random.fork_rng(devices=[]):  # the splits are a random shuffle: the same one for every score
        torch.manual_seed(0)
        return float(metric.compute()[0])


def scores(judge, images: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Score (10 splits, as in training; and 1 split), class shares and FID against ``real`` of ``images``
    (floats in [0, 1])."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from lit_mlcourse.models.judges import JudgeFeatures

    fid = FrechetInceptionDistance(JudgeFeatures(judge), input_img_size=tuple(images.shape[1:]), normalize=True)
    fid.update(real, real=True)
    fid.update(images, real=False)
    with torch.no_grad():
        counts = torch.bincount(judge(images).argmax(1), minlength=judge.num_classes).float()
    shares = counts / counts.sum()
    return {"score": inception_score(judge, images, 10), "score_1": inception_score(judge, images, 1),
            "fid": float(fid.compute()),
            "min_share": float(shares.min()), "max_share": float(shares.max())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--judge", type=Path, default=None, help="a digits classifier's best.ckpt (default: train one)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--root", type=Path, default=Path("runs/bench_digits_gan"))
    parser.add_argument("--lit-args", default="", help="more arguments for the GAN's `lit fit`, e.g. a variant")
    parser.add_argument("--more-judges", type=Path, nargs="*", default=[], help="classifiers that score them too")
    parser.add_argument("--reuse", action="store_true", help="score the newest run of each seed under --root")
    args = parser.parse_args()
    print(f"python bench/digits_gan.py --seeds {' '.join(map(str, args.seeds))} --lit-args '{args.lit_args}'  "
          f"({os.cpu_count()} CPUs)")  # fmt: skip
    if args.judge is None:
        run, _ = lit_fit(args.root, "judge", "--config", str(CONFIGS / "quickstart.yaml"))
        args.judge = run / "checkpoints" / "best.ckpt"
        print(f"judge: {args.judge}, test/acc {json.loads((run / 'summary.json').read_text())['metrics']['test/acc']}")

    from lit_mlcourse.data import DigitsDataModule
    from lit_mlcourse.models import GAN
    from lit_mlcourse.models.judges import load_judge

    data = DigitsDataModule()
    data.setup("fit"), data.setup("test")
    train, test = data.datasets["train"].tensors[0], data.datasets["test"].tensors[0]
    judge = load_judge(args.judge, (1, 8, 8))
    # The real test images judged against the real training images. Their score is taken in one split of 360:
    # ten splits of 36 images would lower it (a split that small misses classes), so it is compared with the
    # samples' score in one split of 2,000 too.
    reference = scores(judge, test, train)
    print(f"real test images: score {reference['score_1']:.3f} (1 split), FID(real train, real test) "
          f"{reference['fid']:.3f}, rarest class {reference['min_share']:.3f}")  # fmt: skip
    more_judges = [load_judge(path, (1, 8, 8)) for path in args.more_judges]
    rows, more_rows = [], []
    for seed in args.seeds:
        if args.reuse:
            runs = sorted((args.root / f"gan_s{seed}").glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
            run, seconds = runs[-1], float("nan")
        else:
            run, seconds = lit_fit(args.root, f"gan_s{seed}", "--config", str(CONFIGS / "digits_gan.yaml"),
                                   "--model.judge", str(args.judge), "--seed_everything", str(seed),
                                   *shlex.split(args.lit_args))  # fmt: skip
        model = GAN.load_from_checkpoint(run / "checkpoints" / "best.ckpt", map_location="cpu")
        samples = model.sample(args.samples, seed=0)
        row = {"seed": seed, "seconds": seconds, **scores(judge, samples, test)}
        rows.append(row)
        more_rows.append([inception_score(other, samples, 10) for other in more_judges])
        print(f"seed {seed}: {seconds:.0f} s, score {row['score']:.3f} (1 split: {row['score_1']:.3f}), "
              f"FID(generated, real test) {row['fid']:.3f}, class shares {row['min_share']:.3f} - "
              f"{row['max_share']:.3f}", flush=True)  # fmt: skip
    print("\n| seed | wall | score (2,000 samples, 10 splits) | score (1 split) | FID vs real test | rarest class |"
          " commonest class |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['seed']} | {row['seconds']:.0f} s | {row['score']:.3f} | {row['score_1']:.3f} | "
              f"{row['fid']:.3f} | {row['min_share']:.3f} | {row['max_share']:.3f} |")  # fmt: skip
    keys = ("seconds", "score", "score_1", "fid", "min_share", "max_share")
    if args.reuse:  # runs not timed here
        keys = keys[1:]
    print("| mean +- std | " + ("| " if args.reuse else "") + " | ".join(
        f"{statistics.mean(r[k] for r in rows):.3f} +- {statistics.pstdev([r[k] for r in rows]):.3f}" for k in keys
    ) + " |")  # fmt: skip
    print(f"| real test images (360) | | | {reference['score_1']:.3f} | {reference['fid']:.3f} (vs real train) | "
          f"{reference['min_share']:.3f} | {reference['max_share']:.3f} |")  # fmt: skip
    if more_judges:
        print("\nThe same samples (10 splits) and the real test images (1 split) by the other judges:\n")
        print("| judge | " + " | ".join(f"seed {seed}" for seed in args.seeds) + " | mean | real test images |")
        print("| --- |" + " --- |" * (len(args.seeds) + 2))
        for index, (path, other) in enumerate(zip(args.more_judges, more_judges, strict=True)):
            figures = [scores_of_seed[index] for scores_of_seed in more_rows]
            real = inception_score(other, test, 1)
            print(f"| {path} | " + " | ".join(f"{value:.3f}" for value in figures)
                  + f" | {statistics.mean(figures):.3f} | {real:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
