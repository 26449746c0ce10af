"""Every task in one process and under DDP on two CPU processes (configs/trainer/ddp_cpu.yaml), through `lit` as a
user runs it, at the same global batch (the per-process batch halved) and seed: the same training, the same figures.

What may differ between the two, and how each comparison deals with it:
- data order: RandomSampler (one process) and DistributedSampler (DDP) shuffle differently. `--trainer.overfit_batches
  N` turns shuffling off (first N batches, in order); DDP's sampler then gives process r samples r, r + 2, ..., so
  global batch k is the one process's batch k, and the averaged gradients of two half-batch means are the gradient of
  the whole batch's mean.
- batch norm: ddp_cpu.yaml has no sync_batchnorm (no CPU kernel), so each process normalizes with its half batch's
  statistics, and networks with batch norm (the CNNs, SimCLR's projection, DCGAN) train differently. For them the
  comparison is the evaluation of one checkpoint: the DDP run's last validation against `lit validate` of its
  last.ckpt in one process (eval mode: running statistics, no batch dependence). The DDP run evaluates with rank 0's
  buffers, which DDP broadcasts at the first validation forward pass, and saves those in last.ckpt.
- randomness per process (dropout, augmentation, SimCLR's views, the GAN's noise): dropout is set to 0 where the
  weights are compared; the evaluations have none, except the GAN's generated samples (see its test).
- uneven splits: Lightning's DistributedSampler would pad a 217-image validation set to 218 with a repeated image;
  the DataModules give evaluation splits an unrepeated sampler (data.in_memory.evaluation_sampler), and the tests
  below use odd-sized splits so that a repeated or missing image shows.
- float summation order (two partial sums, then an all-reduce): relative differences of about 1e-7 per sum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, lit_in_process, optional_fixture, run_lit

DDP = ["--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml")]
# Digits split into 1,229 training, 217 validation and 351 test images: all odd, so that on 2 processes a repeated
# (padded) or missing image shows in the metrics, SimCLR's memory bank included.
ODD_DIGITS = ["--data.test_fraction", "0.195"]
ONE_EPOCH = ["--trainer.max_epochs", "1", "--trainer.num_sanity_val_steps", "0", "--test_after_fit", "false"]

# Metrics from integer counts (accuracy, F1, kNN accuracy), synced by torchmetrics: equal up to float32 rounding of
# the final division. One image of 217 is 0.0046, so a repeated or missing image fails.
COUNT_ABS = 1e-6
# Means of float32 losses and errors over a few hundred samples, summed in another order: relative differences of
# order sqrt(n) * 6e-8, bounded here with ~100x margin. A loss logged without sync_dist (rank 0's half of the samples)
# is off by ~1%, and with Lightning's own sync_dist mean by 108.5 / 108 - 1 = 0.46% (217 images on 2 processes: it
# floors the mean count of samples, Lightning issue #21859; the models log their losses as torchmetrics means).
MEAN_REL = 1e-5
# Weights after 2-4 AdamW steps of lr 3e-3 to 5e-3, compared tensor by tensor in norm. Each step moves a weight by
# lr * m / (sqrt(v) + eps), up to ~lr. The summation order perturbs gradients by ~1e-6 relative, which changes a step
# by ~1e-6 lr; only weights whose gradient sits near eps = 1e-8 (a few head weights on features ~0 after ReLU and
# pooling) can be moved by up to ~0.03 lr (their two Adam averages differ by up to 3e-10 absolute). A handful of such
# entries stays far below 1e-4 of a tensor's norm (observed: 2e-6), while a different global batch, or a schedule of
# another length, changes every trained weight by ~lr: 1e-2 or more of the norm (weights of ~0.1 moved by ~lr/step).
WEIGHT_REL = 1e-4
# Metrics of runs whose weights differ that little (train and validation means over the same samples; observed: 1e-6).
TRAINED_REL = 1e-4


def fit(root: Path, name: str, *args: str, after: Future | None = None) -> Path:
    """``lit fit`` as a user runs it (a subprocess), into ``root/name/version_0``; once ``after`` is done, if given."""
    if after is not None:
        after.result()
    run_lit("fit", *args, *ONE_EPOCH, "--name", name, "--trainer.default_root_dir", str(root), cwd=root)
    return root / name / "version_0"


def fit_here(root: Path, name: str, *args: str) -> Path:
    """``lit fit`` in one process, into ``root/name/version_0``: run in this process through the entry point of
    ``lit`` (conftest.lit_in_process, on one thread as the subprocesses): the same code, without another ~6 s
    interpreter start, while the DDP runs go on in the background."""
    lit_in_process("fit", *args, *ONE_EPOCH, "--name", name, "--trainer.default_root_dir", str(root))
    return root / name / "version_0"


def validate(run: Path, *args: str) -> dict[str, float]:
    """``lit validate`` of ``run``'s last.ckpt in one process; the metrics of its summary. Run in this process through
    the entry point of ``lit`` (conftest.lit_in_process): the same code, without another ~6 s interpreter start."""
    root, name = run.parents[1], f"{run.parent.name}_validate"
    checkpoint = str(run / "checkpoints" / "last.ckpt")
    where = ["--name", name, "--trainer.default_root_dir", str(root)]
    lit_in_process("validate", *args, "--ckpt_path", checkpoint, *where)
    return metrics(root / name / "version_0")


def metrics(run: Path) -> dict[str, float]:
    return json.loads((run / "summary.json").read_text())["metrics"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def assert_same_weights(one: Path, ddp: Path) -> None:
    first, second = weights(one), weights(ddp)
    assert first.keys() == second.keys()
    for key in first:
        expected, found = first[key].double(), second[key].double()
        difference, norm = torch.linalg.vector_norm(found - expected), torch.linalg.vector_norm(expected)
        assert difference <= WEIGHT_REL * norm + 1e-12, f"{key}: |difference| {difference:.3g}, |weights| {norm:.3g}"


def assert_same_metrics(one: dict, ddp: dict, keys: set[str], rel: float) -> None:
    assert keys <= one.keys() and keys <= ddp.keys(), (sorted(one), sorted(ddp))
    for key in sorted(keys):
        assert ddp[key] == pytest.approx(one[key], rel=rel, abs=COUNT_ABS), key


def evaluation_keys(found: dict, prefix: str = "val/") -> set[str]:
    return {key for key in found if key.startswith(prefix)}


# The tasks' arguments (a few steps each); the DDP runs halve the per-process batch (same global batch).
def pm25(pm25_dir: Path) -> list[str]:
    return ["--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_dir), "--model.dropout", "0",
            "--trainer.overfit_batches", "4"]  # fmt: skip


def finetune(backbone: Path) -> list[str]:
    # The linear protocol keeps the pretrained backbone in eval mode (batch norm on its running statistics), so only
    # the head trains and the two runs can be compared weight by weight; fine-tuning mode trains batch norm.
    return ["--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt",
            str(backbone / "checkpoints" / "last.ckpt"), "--model.mode", "linear", "--model.net.dropout", "0",
            "--trainer.overfit_batches", "2"]  # fmt: skip


CLASSIFIER = ["--config", str(CONFIGS / "quickstart.yaml"), *ODD_DIGITS]
SIMCLR = ["--config", str(CONFIGS / "digits_simclr.yaml"), *ODD_DIGITS]


def cifar(layer: Path) -> list[str]:
    # The device path's index batches go through the same samplers; float32, since bfloat16 logits (3 significant
    # digits) could flip a near-tie between batch shapes. 39 validation images: odd.
    return ["--config", str(CONFIGS / "cifar10_fast.yaml"), "--config", str(layer), "--data.val_size", "39",
            "--trainer.precision", "32-true"]  # fmt: skip


def gan(judge: str) -> list[str]:
    return ["--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge", judge, *ODD_DIGITS]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddp_parity")


@pytest.fixture(scope="module")
def runs(root, request) -> Iterator[dict[str, Future]]:
    """The `lit` runs of the selected tests, two at a time: each run spends seconds starting Python and importing torch
    on one core, so two keep both cores busy (the module took ~150 s one run after another, ~95 s like this). The
    one-process runs the DDP ones are compared with are the tests' own (fit_here, validate)."""
    selected = {item.originalname for item in request.session.items if item.module is request.module}

    def wanted(*words: str) -> bool:
        return any(word in test for test in selected for word in words)

    with ThreadPoolExecutor(max_workers=2) as pool:
        started: dict[str, Future] = {}

        def start(name: str, *args: str, after: Future | None = None) -> None:
            started[name] = pool.submit(fit, root, name, *args, after=after)

        if wanted("simclr", "finetune"):  # first: the fine-tune starts from its checkpoint
            start("simclr_ddp", *SIMCLR, *DDP, "--data.batch_size", "64", "--trainer.limit_train_batches", "2",
                  "--trainer.check_val_every_n_epoch", "1")  # fmt: skip
        if wanted("pm25") and (pm25_dir := optional_fixture(request, "pm25_dir")):
            start("pm25_ddp", *pm25(pm25_dir), *DDP, "--data.batch_size", "32")
        if wanted("classifier"):
            start("classifier_ddp", *CLASSIFIER, *DDP, "--data.batch_size", "32", "--trainer.limit_train_batches", "4")
        if wanted("cifar"):
            layer = request.getfixturevalue("cifar_layer")
            start("cifar_ddp", *cifar(layer), *DDP, "--data.batch_size", "16", "--trainer.limit_train_batches", "2")
        if wanted("finetune"):
            backbone = root / "simclr_ddp" / "version_0"
            start("finetune_ddp", *finetune(backbone), *DDP, "--data.batch_size", "16", after=started["simclr_ddp"])
        if wanted("gan"):
            # Meanwhile, in this thread: the GAN's judge (a session fixture, already there when the whole suite runs).
            judge, where = request.getfixturevalue("judge_checkpoint"), ["--trainer.default_root_dir", str(root)]
            started["gan_ddp"] = pool.submit(run_lit, "validate", *gan(judge), *DDP, "--name", "gan_ddp", *where,
                                             cwd=root)  # fmt: skip
        yield started


# --- training parity: no batch norm, no dropout, shuffling off -------------------------------------------------------


def test_pm25_regression_trains_the_same_under_ddp(pm25_dir, root, runs):
    one = fit_here(root, "pm25_one", *pm25(pm25_dir), "--data.batch_size", "64")
    ddp = runs["pm25_ddp"].result()
    assert_same_weights(one, ddp)
    # train/loss and val/loss were logged without sync_dist: rank 0's half of the samples under DDP
    keys = {"train/loss", "train/rmse", "train/mae", "val/loss", "val/rmse", "val/mae", "val/r2"}
    assert_same_metrics(metrics(one), metrics(ddp), keys, TRAINED_REL)


def test_finetune_linear_probe_trains_the_same_under_ddp(root, runs):
    backbone = runs["simclr_ddp"].result()
    one = fit_here(root, "finetune_one", *finetune(backbone), "--data.batch_size", "32")
    ddp = runs["finetune_ddp"].result()
    assert_same_weights(one, ddp)
    found = metrics(one)
    assert_same_metrics(found, metrics(ddp), {"train/loss", *evaluation_keys(found)}, TRAINED_REL)


# --- evaluation parity: one checkpoint, evaluated by the DDP run and by one process ----------------------------------


def test_classifier_validation_under_ddp_equals_one_process(runs):
    ddp = runs["classifier_ddp"].result()
    found = metrics(ddp)
    assert {"val/acc", "val/acc_top5", "val/f1", "val/loss"} <= found.keys()
    assert_same_metrics(validate(ddp, *CLASSIFIER), found, evaluation_keys(found), MEAN_REL)


def test_cifar_device_path_validation_under_ddp_equals_one_process(runs, cifar_layer):
    ddp = runs["cifar_ddp"].result()
    found = metrics(ddp)
    assert_same_metrics(validate(ddp, *cifar(cifar_layer)), found, evaluation_keys(found), MEAN_REL)


def test_simclr_knn_and_probe_under_ddp_equal_one_process(runs):
    # The kNN memory bank (the 1,229 training digits) is gathered from both processes, each image once.
    ddp = runs["simclr_ddp"].result()
    found = metrics(ddp)
    assert {"val/knn_acc", "val/probe_acc"} <= found.keys()
    assert_same_metrics(validate(ddp, *SIMCLR), found, evaluation_keys(found), MEAN_REL)


def test_gan_scores_under_ddp_match_one_process_within_sampling_noise(runs, root, judge_checkpoint):
    # The scores of the freshly initialized GAN (seeded: the same weights in every run), without a fit: what DDP
    # changes is the evaluation (each real image once, FID and IS states summed, class counts reduced), and this
    # generator's near-constant samples keep sampling noise far below the effect of a wrong real side (see below).
    runs["gan_ddp"].result()
    lit_in_process("validate", *gan(judge_checkpoint), "--name", "gan_one", "--trainer.default_root_dir", str(root))
    found, one = metrics(root / "gan_ddp" / "version_0"), metrics(root / "gan_one" / "version_0")
    # Both sides are the same sets: each real digit once, and the same 2,000 latents (every process draws all of them
    # from one seed and scores its share, models/gan.py). FID's states are sums, so only the summation order differs:
    # 1e-5 relative. A real digit repeated (DistributedSampler's padding) or missing moves FID by 6e-4 to 3e-3.
    # (The score's 10 splits hold other samples under DDP, whose samples arrive in rank order; this generator's
    # samples are all one class, IS 1.0, so that cannot show here.)
    for key in ("val/fid", "val/is"):
        assert found[key] == pytest.approx(one[key], rel=1e-5), key
    assert found["val/min_class_share"] == pytest.approx(one["val/min_class_share"], abs=COUNT_ABS)
