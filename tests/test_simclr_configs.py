"""Pretrain -> fine-tune through the `lit` command, as the README shows it, on every SimCLR config (shortened)."""

import json
from pathlib import Path

import pytest
from conftest import CONFIGS, run_lit
from image_fixtures import make_splits

SHORT = ["--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1"]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def digits_backbone(tmp_path_factory) -> Path:
    """best.ckpt of a 2-epoch `lit fit --config configs/digits_simclr.yaml`."""
    root = tmp_path_factory.mktemp("simclr")
    run_lit("fit", "--config", str(CONFIGS / "digits_simclr.yaml"), *SHORT, "--trainer.default_root_dir", str(root),
            cwd=root)  # fmt: skip
    run = root / "digits_simclr" / "version_0"
    metrics = summary(run)
    assert {"train/loss", "train/probe_acc", "val/knn_acc", "val/probe_acc", "test/knn_acc"} <= set(metrics)
    assert metrics["test/knn_acc"] > 0.5  # kNN on barely trained features, far above chance
    return run / "checkpoints" / "best.ckpt"


def test_digits_pretrain_then_finetune_on_a_tenth_of_the_labels(digits_backbone, tmp_path):
    result = run_lit("fit", "--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt",
                     str(digits_backbone), *SHORT, "--trainer.default_root_dir", str(tmp_path),
                     cwd=tmp_path)  # fmt: skip
    run = tmp_path / "digits_finetune" / "version_0"
    assert {"val/acc", "val/f1", "test/acc", "test/acc_top5"} <= set(summary(run))
    assert (run / "confusion_matrix_test.png").is_file()
    assert "Trainable params" in result.stdout
    config = (run / "config.yaml").read_text()
    assert f"backbone_ckpt: {digits_backbone}" in config and "label_fraction: 0.1" in config


def test_finetuning_from_a_classifier_checkpoint_is_refused_naming_the_file(digits_backbone, tmp_path):
    run_lit("fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.max_epochs", "1",
            "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)  # fmt: skip
    classifier = tmp_path / "quickstart" / "version_0" / "checkpoints" / "best.ckpt"
    result = run_lit("fit", "--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt", str(classifier),
                     "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"model.backbone_ckpt: {classifier} is not a SimCLR checkpoint "
        "(it was saved by lit_mlcourse.models.ImageClassifier)" in result.stderr
    )
    assert not (tmp_path / "digits_finetune").exists()  # refused before any run folder exists


def test_finetuning_another_backbone_is_refused_naming_the_keys(digits_backbone, tmp_path):
    result = run_lit("fit", "--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt",
                     str(digits_backbone), "--model.net.widths", "[16, 128]",
                     "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"model.backbone_ckpt: {digits_backbone} holds another backbone than model.net" in result.stderr
    assert "(the checkpoint's: lit_mlcourse.nets.SmallCNN {'widths': [64, 128]" in result.stderr
    assert "0.0.weight (64, 1, 3, 3) vs (16, 1, 3, 3)" in result.stderr


def test_a_simclr_checkpoint_has_no_predictions_and_says_what_to_do(digits_backbone, tmp_path):
    result = run_lit("predict", "--config", str(CONFIGS / "digits_simclr.yaml"), "--ckpt_path", str(digits_backbone),
                     "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "A SimCLR checkpoint gives features, not predictions: fine-tune it first" in result.stderr


def test_cifar_pretrain_on_the_device_path_then_finetune(cifar_layer, tmp_path):
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--data.batch_size", "16",
             "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    run_lit("fit", "--config", str(CONFIGS / "cifar10_simclr.yaml"), "--config", str(cifar_layer), *short,
            "--trainer.check_val_every_n_epoch", "1", cwd=tmp_path)  # fmt: skip
    pretrained = tmp_path / "cifar10_simclr" / "version_0"
    assert {"val/knn_acc", "test/knn_acc", "test/probe_acc"} <= set(summary(pretrained))
    run_lit("fit", "--config", str(CONFIGS / "cifar10_finetune.yaml"), "--config", str(cifar_layer), *short,
            "--model.backbone_ckpt", str(pretrained / "checkpoints" / "best.ckpt"), cwd=tmp_path)  # fmt: skip
    assert {"val/acc", "test/acc"} <= set(summary(tmp_path / "cifar10_finetune" / "version_0"))


def test_imagefolder_simclr_on_a_small_folder(tmp_path):
    root = make_splits(tmp_path / "images", {"ants": 12, "bees": 8})
    run_lit("fit", "--config", str(CONFIGS / "imagefolder_simclr.yaml"), "--data.root", str(root),
            "--data.image_size", "16", "--data.batch_size", "8", "--data.num_workers", "0", *SHORT,
            "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)  # fmt: skip
    metrics = summary(tmp_path / "imagefolder_simclr" / "version_0")
    assert {"val/knn_acc", "val/probe_acc"} <= set(metrics) and "test/knn_acc" not in metrics  # no test/ folder


def test_digits_simclr_under_ddp_on_two_cpu_processes(tmp_path):
    # Negatives and the kNN memory bank are gathered from both processes (the loss's gradient parity with one
    # process is tested in tests/test_losses.py); a collective on one rank alone would hang here.
    run_lit("fit", "--config", str(CONFIGS / "digits_simclr.yaml"), *SHORT, "--trainer.strategy", "ddp",
            "--trainer.devices", "2", "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path,
            timeout=180)  # fmt: skip
    runs = list(tmp_path.glob("digits_simclr/version_*"))
    assert len(runs) == 1
    metrics = summary(runs[0])
    assert {"val/knn_acc", "test/knn_acc", "test/probe_acc"} <= set(metrics) and metrics["test/knn_acc"] > 0.5
