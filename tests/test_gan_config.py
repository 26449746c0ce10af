"""configs/digits_gan.yaml through the `lit` command (shortened), in one process and under DDP."""

import json

import numpy as np
import pytest
from conftest import CONFIGS, run_lit
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

SHORT = ["--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1", "--model.num_eval_samples", "200"]


@pytest.fixture
def judge(judge_checkpoint) -> str:
    return judge_checkpoint


@pytest.mark.parametrize("ddp", [False, True], ids=["one process", "ddp on 2 cpu processes"])
def test_digits_gan_scores_its_samples_and_draws_grids(judge, tmp_path, ddp):
    # Under DDP the discriminator's step leaves the generator without gradients: the GAN switches DDP's search
    # for unused parameters on, where Lightning's own GAN example fails.
    distributed = ["--trainer.strategy", "ddp", "--trainer.devices", "2"] if ddp else []
    result = run_lit("fit", "--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge", judge, *SHORT,
                     *distributed, "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path, timeout=240)  # fmt: skip
    runs = list(tmp_path.glob("digits_gan/version_*"))
    assert len(runs) == 1
    run = runs[0]
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert {"val/fid", "val/is", "val/min_class_share", "test/fid", "test/is", "train/d_loss", "train/g_loss"} <= set(
        metrics
    )
    assert f"GAN judge: classifier {judge} (10 classes)" in result.stdout + result.stderr
    assert (run / "samples" / "final.png").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    events = EventAccumulator(str(run)).Reload()
    assert "samples" in events.Tags()["images"]


def test_predict_writes_generated_images_as_png_and_npz(judge, tmp_path):
    config = ["--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge", judge]
    run_lit("fit", *config, *SHORT, "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)
    best = tmp_path / "digits_gan" / "version_0" / "checkpoints" / "best.ckpt"
    result = run_lit("predict", *config, "--ckpt_path", str(best), "--trainer.default_root_dir", str(tmp_path),
                     cwd=tmp_path)  # fmt: skip
    folder = tmp_path / "digits_gan" / "version_1" / "generated"
    assert f"wrote 1000 generated images to {folder}" in result.stdout
    assert len(list(folder.glob("*.png"))) == 1000
    images = np.load(folder / "images.npz")["images"]
    assert images.shape == (1000, 8, 8, 1) and images.dtype == np.uint8
    with Image.open(folder / "000007.png") as png:
        assert png.size == (8, 8)
        # save_image writes 3 identical channels for a gray image: the PNG holds the same pixels as the npz
        np.testing.assert_array_equal(np.asarray(png)[..., 0], images[7, ..., 0])


def test_cifar_gan_with_a_cifar_judge_on_synthetic_cifar(cifar_layer, cifar_judge_checkpoint, tmp_path):
    short = ["--config", str(cifar_layer), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
             "--data.batch_size", "16", "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    run_lit("fit", "--config", str(CONFIGS / "cifar10_gan.yaml"), *short, "--model.judge", cifar_judge_checkpoint,
            "--model.num_eval_samples", "64", "--trainer.check_val_every_n_epoch", "1", cwd=tmp_path)  # fmt: skip
    metrics = json.loads((tmp_path / "cifar10_gan" / "version_0" / "summary.json").read_text())["metrics"]
    assert {"val/fid", "val/is", "test/fid", "test/min_class_share"} <= set(metrics)


def test_digits_gan_judged_by_inception_from_local_weights(inception_weights, tmp_path):
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
             "--trainer.check_val_every_n_epoch", "1", "--model.num_eval_samples", "16", "--data.batch_size", "16",
             "--test_after_fit", "false"]  # fmt: skip
    result = run_lit("fit", "--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge", str(inception_weights),
                     *short, "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)  # fmt: skip
    assert f"GAN judge: inception-v3 {inception_weights} (not the data's classes)" in result.stdout + result.stderr
    metrics = json.loads((tmp_path / "digits_gan" / "version_0" / "summary.json").read_text())["metrics"]
    assert metrics["val/fid"] > 0 and 1 <= metrics["val/is"] <= 1008
    assert "val/min_class_share" not in metrics  # Inception's classes are ImageNet's, not the digits
