"""RELIABILITY row 22: `trainer.gradient_clip_val` holds at every step: through Lightning's clipping for the tasks
it optimizes, and routed to the GAN's own clipping (manual optimization, where Lightning refuses the option)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CONFIGS, lit_in_process


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """Runs with the probe callback allowed and its record's path; returns a reader of the record."""
    record = tmp_path / "grad_norms.json"
    monkeypatch.setenv("LIT_MLCOURSE_ALLOW_IMPORTS", "grad_probe")
    monkeypatch.setenv("LIT_MLCOURSE_GRAD_PROBE", str(record))
    return lambda: json.loads(record.read_text())


def test_a_clip_of_one_holds_at_every_step_of_the_regression(pm25_dir, tmp_path, probe):
    # lr 0.5 on unscaled PM2.5 targets: gradients far above 1 at the first steps, which the clip must bring down.
    lit_in_process("fit", "--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_dir),
                   "--trainer.gradient_clip_val", "1.0", "--trainer.callbacks+=grad_probe.GradNormProbe",
                   "--optimizer.init_args.lr", "0.5", "--trainer.max_epochs", "1", "--trainer.limit_train_batches",
                   "20", "--trainer.limit_val_batches", "2", "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    record = probe()
    assert len(record["stepped"]) == len(record["hook"]) == 20
    assert max(record["hook"]) > 10  # unclipped: the clip had something to do
    assert max(record["stepped"]) <= 1 + 1e-6


def test_the_gan_routes_the_trainers_clip_to_its_own_steps(judge_checkpoint, tmp_path, probe):
    short = ["--model.judge", judge_checkpoint, "--model.num_eval_samples", "50", "--trainer.max_epochs", "1",
             "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "1",
             "--trainer.callbacks+=grad_probe.GradNormProbe", "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    lit_in_process("fit", "--config", str(CONFIGS / "digits_gan.yaml"), "--trainer.gradient_clip_val", "0.01", *short)
    record = probe()
    assert len(record["stepped"]) == 8  # the discriminator's and the generator's step per batch
    assert max(record["stepped"]) <= 0.01 * (1 + 1e-6)
    (checkpoint,) = tmp_path.glob("**/last.ckpt")
    stored = torch.load(checkpoint, weights_only=True)["hyper_parameters"]
    assert (stored["gradient_clip_val"], stored["gradient_clip_algorithm"]) == (0.01, "norm")


def test_two_different_clips_for_the_gan_are_refused_naming_both(judge_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        lit_in_process("fit", "--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge", judge_checkpoint,
                       "--trainer.gradient_clip_val", "1.0", "--model.gradient_clip_val", "0.5",
                       "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "trainer.gradient_clip_val=1.0 (algorithm norm) and model.gradient_clip_val=0.5" in error
    assert not list(tmp_path.glob("**/version_*"))
