"""Every CIFAR-10 config through the `lit` command on a tiny synthetic CIFAR folder (shortened runs)."""

import json

import pytest
import yaml
from cifar_fixtures import CLASS_NAMES, write_cifar_folder
from conftest import CONFIGS, run_lit

SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--data.batch_size", "16"]


@pytest.mark.parametrize("config", ["cifar10_cnn", "cifar10_resnet18", "cifar10_fast"])
def test_cifar_config_fits_tests_and_draws_its_confusion_matrix(cifar_layer, config, tmp_path):
    layer = cifar_layer
    run_lit("fit", "--config", str(CONFIGS / f"{config}.yaml"), "--config", str(layer), *SHORT,
            "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)  # fmt: skip
    run = tmp_path / config / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert {"val/acc", "val/acc_top5", "val/f1", "test/acc", "test/acc_top5"} <= set(summary["metrics"])
    assert (run / "confusion_matrix_val.png").is_file() and (run / "confusion_matrix_test.png").is_file()
    assert (run / "checkpoints" / "best.ckpt").is_file()


def test_predict_writes_cifar_class_names(cifar_layer, tmp_path):
    layer = cifar_layer
    config = ["--config", str(CONFIGS / "cifar10_cnn.yaml"), "--config", str(layer)]
    run_lit("fit", *config, *SHORT, "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)
    best = tmp_path / "cifar10_cnn" / "version_0" / "checkpoints" / "best.ckpt"
    result = run_lit("predict", *config, "--ckpt_path", str(best), "--trainer.default_root_dir", str(tmp_path),
                     cwd=tmp_path)  # fmt: skip
    lines = (tmp_path / "cifar10_cnn" / "version_1" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "index,class,probability" and len(lines) == 1 + 40  # the 40 synthetic test images
    assert {line.split(",")[1] for line in lines[1:]} <= set(CLASS_NAMES)
    assert "wrote 40 predictions" in result.stdout


def test_without_data_offline_the_error_says_where_to_put_it(tmp_path):
    result = run_lit("fit", "--config", str(CONFIGS / "cifar10_cnn.yaml"), "--data.data_dir", str(tmp_path / "none"),
                     cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2
    assert f"CIFAR-10 is not in {tmp_path / 'none' / 'cifar-10-batches-py'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run folder exists


def test_a_tampered_batch_stops_the_run_naming_the_file(tmp_path):
    checksums = write_cifar_folder(tmp_path / "data", per_batch=20)
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-10] + b"0123456789")
    layer = tmp_path / "layer.yaml"
    layer.write_text(yaml.safe_dump({"data": {"init_args": {"data_dir": str(tmp_path / "data"), "checksums": checksums,
                                                            "val_size": 20}}}))  # fmt: skip
    result = run_lit("fit", "--config", str(CONFIGS / "cifar10_cnn.yaml"), "--config", str(layer), *SHORT,
                     cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2
    assert f"{batch} failed its integrity check" in result.stderr and "Traceback" not in result.stderr


def test_the_device_path_trains_under_ddp_on_two_cpu_processes(cifar_layer, tmp_path):
    # Lightning shards the index batches with a DistributedSampler; metrics and the confusion matrix are
    # summed over both processes, and only rank 0 draws it (a collective on one rank alone would hang).
    run_lit("fit", "--config", str(CONFIGS / "cifar10_cnn.yaml"), "--config", str(cifar_layer), *SHORT,
            "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path, timeout=180)  # fmt: skip
    runs = list(tmp_path.glob("cifar10_cnn/version_*"))
    assert len(runs) == 1  # one run folder for both processes
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert {"val/acc", "test/acc"} <= set(summary["metrics"])
    assert (runs[0] / "confusion_matrix_test.png").is_file()
