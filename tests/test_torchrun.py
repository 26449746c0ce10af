"""`python -m lit_mlcourse` under torchrun: two CPU processes (gloo), one run folder, one summary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import CONFIGS, lit_env


@pytest.mark.slow
def test_torchrun_two_processes_make_one_run(tmp_path):
    # Lightning would take SLURM's variables over torchrun's, should the tests run in a SLURM job.
    env = {key: value for key, value in lit_env().items() if not key.startswith("SLURM_")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "lit_mlcourse", "fit", "--config", str(CONFIGS / "quickstart.yaml"),
               "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
               "--trainer.max_epochs", "1", "--data.batch_size", "64",
               "--trainer.default_root_dir", str(tmp_path / "runs")]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "MEMBER: 2/2" in output and "distributed_backend=gloo" in output
    runs = tmp_path / "runs" / "quickstart"
    assert sorted(path.name for path in runs.iterdir()) == ["version_0"]  # both ranks chose the same folder
    run = runs / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run_dir"] == str(run) and 0 <= summary["metrics"]["test/acc"] <= 1
    assert {"val/acc", "train/loss"} <= set(summary["metrics"])
    # Each process trained on half of the 1,221 training digits: 10 steps of 64 per epoch (one process: 20).
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 10
