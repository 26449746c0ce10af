"""RELIABILITY row 21: NaN / Inf in training, from the data, from the learning rate and in the backward pass only.
(A NaN loss injected at a step, and last.ckpt kept finite: tests/test_checkpoint_files.py.)"""

from __future__ import annotations

import re

import pytest
import torch
from conftest import CONFIGS, lit_in_process

from lit_mlcourse.data import PM25DataModule
from lit_mlcourse.models.base import TaskModule

POISONED = 1234  # the training window whose inputs get a NaN


def pm25_fit(pm25_dir, tmp_path, *args: str) -> list[str]:
    return ["fit", "--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_dir),
            "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "2", "--trainer.default_root_dir",
            str(tmp_path), *args]  # fmt: skip


def test_a_nan_in_one_training_window_stops_the_run_naming_that_sample(pm25_dir, tmp_path, monkeypatch, capsys):
    # The data layer never lets a NaN through (tests/data/test_pm25_*.py); here one gets in behind its back, as a
    # bug in a transform would, and the stop names the sample to look at.
    setup = PM25DataModule.setup

    def poisoned_setup(self, stage: str) -> None:
        setup(self, stage)
        if "train" in self.datasets:
            self.datasets["train"].tensors[0][POISONED, 0] = float("nan")

    monkeypatch.setattr(PM25DataModule, "setup", poisoned_setup)
    with pytest.raises(SystemExit) as stopped:
        lit_in_process(*pm25_fit(pm25_dir, tmp_path))
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "lit: error: the training loss is nan at step " in error
    assert f"the inputs of training samples {POISONED} (dataset indices; batch positions " in error


def test_a_learning_rate_of_a_million_stops_the_run_within_a_step_of_the_first_non_finite_loss(
    pm25_dir, tmp_path, capsys
):
    with pytest.raises(SystemExit) as stopped:
        lit_in_process(*pm25_fit(pm25_dir, tmp_path, "--optimizer.init_args.lr", "1e6", "--lr_scheduler", "null"))
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    stop = re.search(r"lit: error: the training loss is (nan|inf|-inf) at step (\d+) \(epoch 0, batch (\d+)\)", error)
    assert stop and "the batch's inputs are all finite" in error, error
    assert stop[2] == stop[3] and int(stop[2]) < 70  # within the first epoch's 70 batches
    assert not list(tmp_path.glob("**/*.ckpt"))  # nothing was saved from the blown-up weights


def test_detect_anomaly_names_the_backward_function_that_made_a_nan(pm25_dir, tmp_path, monkeypatch):
    # A finite loss whose gradient is NaN (d sqrt(x)/dx at 0 is inf, times 0): only anomaly mode catches it.
    training_step = TaskModule.training_step

    def nan_gradient(self, batch, batch_idx):
        loss = training_step(self, batch, batch_idx)
        weight = next(self.parameters())
        return loss + 0 * torch.sqrt(weight.sum() * 0) if self.global_step == 2 else loss

    monkeypatch.setattr(TaskModule, "training_step", nan_gradient)
    with pytest.raises(RuntimeError, match=r"Function '\w+' returned nan values in its \d+th output"):
        lit_in_process(*pm25_fit(pm25_dir, tmp_path, "--trainer.detect_anomaly", "true"))
