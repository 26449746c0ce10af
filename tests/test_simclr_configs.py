"""Pretrain -> fine-tune through the `lit` command, as the README shows it, on every SimCLR config (shortened)."""

import json
from concurrent.futures import Future
from pathlib import Path

import pytest
from conftest import CIFAR_SHORT, CONFIGS, after, lit_in_process, run_lit, run_lit_in, selected
from image_fixtures import make_splits

# Imported with the module, as pytest collects it: Lightning's log handler, made at its first import, then writes to
# the session's stderr, not to the capsys stream of the first test that runs `lit` in this process (closed after it).
import lit_mlcourse.cli  # noqa: F401

SHORT = ["--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1"]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["metrics"]


def lit_error(capsys, *args: str) -> str:
    """``lit *args`` in this process (conftest.lit_in_process), refused with exit status 2: what it wrote to stderr.
    The refusal as a subprocess, with no traceback, is test_finetuning_from_a_classifier_checkpoint_is_refused's."""
    with pytest.raises(SystemExit) as exit_info:
        lit_in_process(*args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module", autouse=True)
def runs(request, background, tmp_path_factory) -> dict[str, Future]:
    """The `lit` runs of the selected tests, started in the background (conftest.background) at the module's first
    test, each in a folder of its own; a run that starts from another's checkpoint waits for it (submitted after
    runs that do not wait, so that it takes a worker once its checkpoint is there or nearly)."""
    wanted, started = selected(request), {}

    def start(name: str, *args: str, first: str | None = None, **kwargs) -> Path:
        root = tmp_path_factory.mktemp(name)
        if first is None:
            started[name] = background.submit(run_lit_in, root, *args, **kwargs)
        else:
            started[name] = after(background, started[first], run_lit_in, root, *args, **kwargs)
        return root

    if wanted("digits_pretrain_then_finetune", "another_backbone", "no_predictions"):
        # digits_backbone: a 2-epoch `lit fit --config configs/digits_simclr.yaml`
        backbone = start("digits_simclr", "fit", "--config", str(CONFIGS / "digits_simclr.yaml"), *SHORT)
        backbone = backbone / "digits_simclr" / "version_0" / "checkpoints" / "best.ckpt"
    if wanted("cifar_pretrain"):
        layer = request.getfixturevalue("cifar_layer")
        pretrained = start("cifar10_simclr", "fit", "--config", str(CONFIGS / "cifar10_simclr.yaml"), "--config",
                           str(layer), *CIFAR_SHORT, "--trainer.check_val_every_n_epoch", "1")  # fmt: skip
        pretrained = pretrained / "cifar10_simclr" / "version_0" / "checkpoints" / "best.ckpt"
    if wanted("under_ddp"):
        # Negatives and the kNN memory bank are gathered from both processes (the loss's gradient parity with one
        # process is tested in tests/test_losses.py); a collective on one rank alone would hang here.
        start("ddp", "fit", "--config", str(CONFIGS / "digits_simclr.yaml"), *SHORT, "--trainer.strategy", "ddp",
              "--trainer.devices", "2", timeout=180)  # fmt: skip
    if wanted("digits_pretrain_then_finetune"):
        start("digits_finetune", "fit", "--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt",
              str(backbone), *SHORT, first="digits_simclr")  # fmt: skip
    if wanted("cifar_pretrain"):
        start("cifar10_finetune", "fit", "--config", str(CONFIGS / "cifar10_finetune.yaml"), "--config", str(layer),
              *CIFAR_SHORT, "--model.backbone_ckpt", str(pretrained), first="cifar10_simclr")  # fmt: skip
    if wanted("imagefolder_simclr"):
        images = make_splits(tmp_path_factory.mktemp("images"), {"ants": 12, "bees": 8})
        start("imagefolder_simclr", "fit", "--config", str(CONFIGS / "imagefolder_simclr.yaml"), "--data.root",
              str(images), "--data.image_size", "16", "--data.batch_size", "8", "--data.num_workers", "0",
              *SHORT)  # fmt: skip
    return started


@pytest.fixture(scope="module")
def digits_backbone(runs) -> Path:
    """best.ckpt of a 2-epoch `lit fit --config configs/digits_simclr.yaml` (started by `runs`)."""
    root, _ = runs["digits_simclr"].result()
    run = root / "digits_simclr" / "version_0"
    metrics = summary(run)
    assert {"train/loss", "train/probe_acc", "val/knn_acc", "val/probe_acc", "test/knn_acc"} <= set(metrics)
    assert metrics["test/knn_acc"] > 0.5  # kNN on barely trained features, far above chance
    return run / "checkpoints" / "best.ckpt"


def test_digits_pretrain_then_finetune_on_a_tenth_of_the_labels(digits_backbone, runs):
    # `lit fit --config configs/digits_finetune.yaml --model.backbone_ckpt <digits_backbone> SHORT` (by `runs`)
    root, result = runs["digits_finetune"].result()
    run = root / "digits_finetune" / "version_0"
    assert {"val/acc", "val/f1", "test/acc", "test/acc_top5"} <= set(summary(run))
    assert (run / "confusion_matrix_test.png").is_file()
    assert "Trainable params" in result.stdout
    config = (run / "config.yaml").read_text()
    assert f"backbone_ckpt: {digits_backbone}" in config and "label_fraction: 0.1" in config


def test_finetuning_from_a_classifier_checkpoint_is_refused_naming_the_file(judge_checkpoint, tmp_path):
    classifier = judge_checkpoint  # best.ckpt of a one-epoch `lit fit --config configs/quickstart.yaml`
    result = run_lit("fit", "--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt", str(classifier),
                     "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"model.backbone_ckpt: {classifier} is not a SimCLR checkpoint "
        "(it was saved by lit_mlcourse.models.ImageClassifier)" in result.stderr
    )
    assert not (tmp_path / "digits_finetune").exists()  # refused before any run folder exists


def test_finetuning_another_backbone_is_refused_naming_the_keys(digits_backbone, tmp_path, capsys):
    stderr = lit_error(capsys, "fit", "--config", str(CONFIGS / "digits_finetune.yaml"), "--model.backbone_ckpt",
                       str(digits_backbone), "--model.net.widths", "[16, 128]",
                       "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert "Traceback" not in stderr
    assert f"model.backbone_ckpt: {digits_backbone} holds another backbone than model.net" in stderr
    assert "(the checkpoint's: lit_mlcourse.nets.SmallCNN {'widths': [64, 128]" in stderr
    assert "0.0.weight (64, 1, 3, 3) vs (16, 1, 3, 3)" in stderr


def test_a_simclr_checkpoint_has_no_predictions_and_says_what_to_do(digits_backbone, tmp_path, capsys):
    stderr = lit_error(capsys, "predict", "--config", str(CONFIGS / "digits_simclr.yaml"), "--ckpt_path",
                       str(digits_backbone), "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert "Traceback" not in stderr
    assert "A SimCLR checkpoint gives features, not predictions: fine-tune it first" in stderr


def test_cifar_pretrain_on_the_device_path_then_finetune(runs):
    # configs/cifar10_simclr.yaml, then configs/cifar10_finetune.yaml from its best.ckpt (started by `runs`)
    root, _ = runs["cifar10_simclr"].result()
    assert {"val/knn_acc", "test/knn_acc", "test/probe_acc"} <= set(summary(root / "cifar10_simclr" / "version_0"))
    root, _ = runs["cifar10_finetune"].result()
    assert {"val/acc", "test/acc"} <= set(summary(root / "cifar10_finetune" / "version_0"))


def test_imagefolder_simclr_on_a_small_folder(runs):
    # configs/imagefolder_simclr.yaml on train/ and val/ folders of 12 ants and 8 bees (started by `runs`)
    root, _ = runs["imagefolder_simclr"].result()
    metrics = summary(root / "imagefolder_simclr" / "version_0")
    assert {"val/knn_acc", "val/probe_acc"} <= set(metrics) and "test/knn_acc" not in metrics  # no test/ folder


def test_digits_simclr_under_ddp_on_two_cpu_processes(runs):
    # configs/digits_simclr.yaml, SHORT, on 2 CPU processes (started by `runs`)
    root, _ = runs["ddp"].result()
    folders = list(root.glob("digits_simclr/version_*"))
    assert len(folders) == 1
    metrics = summary(folders[0])
    assert {"val/knn_acc", "test/knn_acc", "test/probe_acc"} <= set(metrics) and metrics["test/knn_acc"] > 0.5
