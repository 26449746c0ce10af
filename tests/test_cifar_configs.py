"""Every CIFAR-10 config through the `lit` command on a tiny synthetic CIFAR folder (shortened runs)."""

import json
from concurrent.futures import Future

import pytest
import yaml
from cifar_fixtures import CLASS_NAMES, write_cifar_folder
from conftest import CIFAR_SHORT, CONFIGS, lit_in_process, run_lit, run_lit_in, selected

# Imported with the module, as pytest collects it: Lightning's log handler, made at its first import, then writes to
# the session's stderr, not to the capsys stream of the first test that runs `lit` in this process (closed after it).
import lit_mlcourse.cli  # noqa: F401

SHORT = list(CIFAR_SHORT)  # one epoch of 2 batches of 16 images
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def done(value) -> Future:
    """A future already holding ``value``: a run that another fixture has made."""
    future = Future()
    future.set_result(value)
    return future


@pytest.fixture(scope="module", autouse=True)
def runs(request, background, tmp_path_factory) -> dict[str, Future]:
    """The `lit` runs of the selected tests, started in the background (conftest.background) at the module's first
    test, each in a folder of its own, longest first. configs/cifar10_cnn.yaml's short fit is the session's
    conftest.cifar_cnn_run (the CIFAR GAN's judge too; the same command): it runs meanwhile in this thread."""
    wanted, started = selected(request), {}
    if not wanted("ddp", "[cifar10_"):
        return started
    layer = request.getfixturevalue("cifar_layer")

    def fit(config: str) -> list[str]:
        return ["fit", "--config", str(CONFIGS / f"{config}.yaml"), "--config", str(layer), *SHORT]

    if wanted("ddp"):
        # Lightning shards the index batches with a DistributedSampler; metrics and the confusion matrix are
        # summed over both processes, and only rank 0 draws it (a collective on one rank alone would hang).
        started["ddp"] = background.submit(run_lit_in, tmp_path_factory.mktemp("ddp"), *fit("cifar10_cnn"), *DDP,
                                           timeout=180)  # fmt: skip
    for config in ("cifar10_resnet18", "cifar10_fast"):
        if wanted(f"[{config}]"):
            started[config] = background.submit(run_lit_in, tmp_path_factory.mktemp(config), *fit(config))
    if wanted("[cifar10_cnn]"):
        cnn = request.getfixturevalue("cifar_cnn_run")  # <root>/cifar10_cnn/version_0
        started["cifar10_cnn"] = done((cnn.parents[1], None))
    return started


@pytest.mark.parametrize("config", ["cifar10_cnn", "cifar10_resnet18", "cifar10_fast"])
def test_cifar_config_fits_tests_and_draws_its_confusion_matrix(runs, config):
    # `lit fit --config configs/<config>.yaml --config <the synthetic layer> SHORT`, started by `runs`.
    root, _ = runs[config].result()
    run = root / config / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert {"val/acc", "val/acc_top5", "val/f1", "test/acc", "test/acc_top5"} <= set(summary["metrics"])
    assert (run / "confusion_matrix_val.png").is_file() and (run / "confusion_matrix_test.png").is_file()
    assert (run / "checkpoints" / "best.ckpt").is_file()


def test_predict_writes_cifar_class_names(cifar_layer, cifar_cnn_run, tmp_path, capsys):
    # `lit predict` (in this process: conftest.lit_in_process) of configs/cifar10_cnn.yaml's short fit
    best = cifar_cnn_run / "checkpoints" / "best.ckpt"
    config = ["--config", str(CONFIGS / "cifar10_cnn.yaml"), "--config", str(cifar_layer)]
    lit_in_process("predict", *config, "--ckpt_path", str(best), "--trainer.default_root_dir", str(tmp_path))
    lines = (tmp_path / "cifar10_cnn" / "version_0" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "index,class,probability" and len(lines) == 1 + 40  # the 40 synthetic test images
    assert {line.split(",")[1] for line in lines[1:]} <= set(CLASS_NAMES)
    assert "wrote 40 predictions" in capsys.readouterr().out


def test_without_data_offline_the_error_says_where_to_put_it(tmp_path):
    result = run_lit("fit", "--config", str(CONFIGS / "cifar10_cnn.yaml"), "--data.data_dir", str(tmp_path / "none"),
                     cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2
    assert f"CIFAR-10 is not in {tmp_path / 'none' / 'cifar-10-batches-py'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run folder exists


def test_a_tampered_batch_stops_the_run_naming_the_file(tmp_path, capsys):
    # In this process (conftest.lit_in_process); a CIFAR error as a subprocess, exit status 2 without a traceback, is
    # test_without_data_offline_the_error_says_where_to_put_it's.
    checksums = write_cifar_folder(tmp_path / "data", per_batch=20)
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-10] + b"0123456789")
    layer = tmp_path / "layer.yaml"
    layer.write_text(yaml.safe_dump({"data": {"init_args": {"data_dir": str(tmp_path / "data"), "checksums": checksums,
                                                            "val_size": 20}}}))  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        lit_in_process("fit", "--config", str(CONFIGS / "cifar10_cnn.yaml"), "--config", str(layer), *SHORT,
                       "--trainer.default_root_dir", str(tmp_path / "runs"))  # fmt: skip
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert f"{batch} failed its integrity check" in stderr and "Traceback" not in stderr


def test_the_device_path_trains_under_ddp_on_two_cpu_processes(runs):
    # `lit fit` of configs/cifar10_cnn.yaml, SHORT, on 2 CPU processes (started by `runs`).
    root, _ = runs["ddp"].result()
    folders = list(root.glob("cifar10_cnn/version_*"))
    assert len(folders) == 1  # one run folder for both processes
    summary = json.loads((folders[0] / "summary.json").read_text())
    assert {"val/acc", "test/acc"} <= set(summary["metrics"])
    assert (folders[0] / "confusion_matrix_test.png").is_file()
