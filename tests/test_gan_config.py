"""configs/digits_gan.yaml through the `lit` command (shortened), in one process and under DDP."""

import json
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from conftest import CIFAR_SHORT, CONFIGS, after, run_lit_in, selected
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

SHORT = ["--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1", "--model.num_eval_samples", "200"]
# Inception-v3 at 299x299 is the slow part: 16 real and 16 generated images, judged once (no sanity check).
INCEPTION_SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches",
                   "1", "--trainer.check_val_every_n_epoch", "1", "--model.num_eval_samples", "16",
                   "--data.batch_size", "16", "--test_after_fit", "false",
                   "--trainer.num_sanity_val_steps", "0"]  # fmt: skip


def digits_gan(judge: str | Path) -> list[str]:
    return ["--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge", str(judge)]


@pytest.fixture
def judge(judge_checkpoint) -> str:
    return judge_checkpoint


@pytest.fixture(scope="module", autouse=True)
def runs(request, background, tmp_path_factory) -> dict[str, Future]:
    """The `lit` runs of the selected tests, started in the background (conftest.background) at the module's first
    test, each in a folder of its own. The one-process digits fit serves its scores test and the predictions."""
    wanted, started = selected(request), {}

    def start(name: str, *args: str, first: str | None = None) -> Path:
        root = tmp_path_factory.mktemp(name)
        if first is None:
            started[name] = background.submit(run_lit_in, root, *args)
        else:
            started[name] = after(background, started[first], run_lit_in, root, *args)
        return root

    if wanted("one process", "ddp on 2", "predict"):
        config = digits_gan(request.getfixturevalue("judge_checkpoint"))
        if wanted("one process", "predict"):
            fitted = start("one_process", "fit", *config, *SHORT)
        if wanted("ddp on 2"):
            # Under DDP the discriminator's step leaves the generator without gradients: the GAN switches DDP's search
            # for unused parameters on, where Lightning's own GAN example fails.
            start("ddp", "fit", *config, *SHORT, "--trainer.strategy", "ddp", "--trainer.devices", "2")
        if wanted("predict"):
            best = fitted / "digits_gan" / "version_0" / "checkpoints" / "best.ckpt"
            start("predict", "predict", *config, "--ckpt_path", str(best), first="one_process")
    if wanted("inception"):
        start("inception", "fit", *digits_gan(request.getfixturevalue("inception_weights")), *INCEPTION_SHORT)
    if wanted("cifar"):
        layer, judge = request.getfixturevalue("cifar_layer"), request.getfixturevalue("cifar_judge_checkpoint")
        start("cifar", "fit", "--config", str(CONFIGS / "cifar10_gan.yaml"), "--config", str(layer), *CIFAR_SHORT,
              "--model.judge", judge, "--model.num_eval_samples", "64",
              "--trainer.check_val_every_n_epoch", "1")  # fmt: skip
    return started


@pytest.mark.parametrize("ddp", [False, True], ids=["one process", "ddp on 2 cpu processes"])
def test_digits_gan_scores_its_samples_and_draws_grids(judge, runs, ddp):
    # The fits (SHORT, under DDP on 2 processes for the second) are started by `runs`.
    root, result = runs["ddp" if ddp else "one_process"].result()
    folders = list(root.glob("digits_gan/version_*"))
    assert len(folders) == 1
    run = folders[0]
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert {"val/fid", "val/is", "val/min_class_share", "test/fid", "test/is", "train/d_loss", "train/g_loss"} <= set(
        metrics
    )
    assert f"GAN judge: classifier {judge} (10 classes)" in result.stdout + result.stderr
    assert (run / "samples" / "final.png").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    events = EventAccumulator(str(run)).Reload()
    assert "samples" in events.Tags()["images"]


def test_predict_writes_generated_images_as_png_and_npz(runs):
    # `lit predict` of the one-process fit's best.ckpt, in a folder of its own (started by `runs`).
    root, result = runs["predict"].result()
    folder = root / "digits_gan" / "version_0" / "generated"
    assert f"wrote 1000 generated images to {folder}" in result.stdout
    assert len(list(folder.glob("*.png"))) == 1000
    images = np.load(folder / "images.npz")["images"]
    assert images.shape == (1000, 8, 8, 1) and images.dtype == np.uint8
    with Image.open(folder / "000007.png") as png:
        assert png.size == (8, 8)
        # save_image writes 3 identical channels for a gray image: the PNG holds the same pixels as the npz
        np.testing.assert_array_equal(np.asarray(png)[..., 0], images[7, ..., 0])


def test_cifar_gan_with_a_cifar_judge_on_synthetic_cifar(runs):
    # configs/cifar10_gan.yaml, CIFAR_SHORT, judged by the short CIFAR classifier (conftest.cifar_judge_checkpoint).
    root, _ = runs["cifar"].result()
    metrics = json.loads((root / "cifar10_gan" / "version_0" / "summary.json").read_text())["metrics"]
    assert {"val/fid", "val/is", "test/fid", "test/min_class_share"} <= set(metrics)


def test_digits_gan_judged_by_inception_from_local_weights(inception_weights, runs):
    root, result = runs["inception"].result()
    assert f"GAN judge: inception-v3 {inception_weights} (not the data's classes)" in result.stdout + result.stderr
    metrics = json.loads((root / "digits_gan" / "version_0" / "summary.json").read_text())["metrics"]
    assert metrics["val/fid"] > 0 and 1 <= metrics["val/is"] <= 1008
    assert "val/min_class_share" not in metrics  # Inception's classes are ImageNet's, not the digits
