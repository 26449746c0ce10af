"""The trainer presets (configs/trainer/): bfloat16 trains on the CPU; the GPU-only options are refused there with the
option, where it was set and what to use instead. DDP itself: tests/test_ddp_parity.py."""

import json

import pytest
import yaml
from conftest import CONFIGS, run_lit

from lit_mlcourse.cli import main

TRAINER = CONFIGS / "trainer"


def lit_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bf16_preset_trains_a_task_on_the_cpu(tmp_path):
    result = run_lit("fit", "--config", str(CONFIGS / "quickstart.yaml"), "--config", str(TRAINER / "bf16.yaml"),
                     "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches",
                     "1", "--test_after_fit", "false", "--trainer.default_root_dir", str(tmp_path),
                     cwd=tmp_path)  # fmt: skip
    assert "Using bfloat16 Automatic Mixed Precision (AMP)" in result.stdout + result.stderr
    run = tmp_path / "quickstart" / "version_0"
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["precision"] == "bf16-mixed"
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert 0 <= metrics["val/acc"] <= 1 and metrics["train/loss"] > 0


def test_fp16_on_the_cpu_is_refused_naming_the_preset_and_bf16(tmp_path, capsys):
    # Lightning itself would warn and train in bf16-mixed, while config.yaml recorded 16-mixed.
    err = lit_error(capsys, "fit", "--config", str(CONFIGS / "quickstart.yaml"), "--config", str(TRAINER / "fp16.yaml"),
                    "--trainer.default_root_dir", str(tmp_path / "runs"))  # fmt: skip
    assert f"trainer.precision=16-mixed (set in {TRAINER / 'fp16.yaml'}:6): float16 mixed precision needs a GPU" in err
    assert "--config configs/trainer/bf16.yaml" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_fp16_on_the_command_line_with_accelerator_auto_on_a_cpu_machine(tmp_path, capsys, monkeypatch):
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    for accelerator in (CUDAAccelerator, MPSAccelerator):  # this machine has no GPU, whatever runs the suite
        monkeypatch.setattr(accelerator, "is_available", staticmethod(lambda: False))
    err = lit_error(capsys, "fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.accelerator", "auto",
                    "--trainer.precision", "16-mixed", "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert "trainer.precision=16-mixed (set on the command line): float16 mixed precision needs a GPU" in err


def test_sync_batchnorm_with_several_cpu_processes_is_refused_naming_ddp_cpu(tmp_path, capsys):
    # Otherwise each process fails in DDP's setup with "SyncBatchNorm layers only work with GPU modules".
    err = lit_error(capsys, "fit", "--config", str(CONFIGS / "quickstart.yaml"), "--config", str(TRAINER / "ddp.yaml"),
                    "--trainer.devices", "2", "--trainer.default_root_dir", str(tmp_path / "runs"))  # fmt: skip
    assert f"trainer.sync_batchnorm=true (set in {TRAINER / 'ddp.yaml'}:12): torch's SyncBatchNorm runs on GPUs" in err
    assert "this run has 2 processes on the CPU" in err and "--config configs/trainer/ddp_cpu.yaml" in err
    assert not (tmp_path / "runs").exists()
