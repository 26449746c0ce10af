"""RELIABILITY row 4 beyond one process: a run stopped by SIGTERM leaves no data-loader worker behind, and under DDP
both processes, signalled apart, save last.ckpt at the same step and stop."""

import sys

import pytest
import torch
from conftest import CONFIGS, DDP_FIT, ROOT, run_lit
from process_group import run_in_own_group
from test_resume_parity import assert_bit_identical


def test_sigterm_with_two_workers_exits_143_and_leaves_no_process(tmp_path):
    command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", "sigterm-at-step", "--at", "2",
               "--", "fit", "--config", str(CONFIGS / "quickstart.yaml"), "--data.num_workers", "2",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "0",
               "--test_after_fit", "false", "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    result, leftovers = run_in_own_group(command, timeout=90)
    assert result.returncode == 143, result.stdout[-3000:]
    assert "lit: stopped by SIGTERM; continue with --ckpt_path last" in result.stdout
    assert not leftovers, "a worker (or another process of the run) outlived it"
    assert (tmp_path / "quickstart" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_sigterm_during_cv_exits_143_without_pointing_at_a_resume_cv_cannot_do(tmp_path):
    command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", "sigterm-at-step", "--at", "2",
               "--", "cv", "--config", str(CONFIGS / "quickstart.yaml"), "--folds", "2", "--trainer.max_epochs", "1",
               "--trainer.limit_train_batches", "4", "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    result, leftovers = run_in_own_group(command, timeout=90)
    assert result.returncode == 143, result.stdout[-3000:]
    assert "lit: stopped by SIGTERM; run it again" in result.stdout  # cv takes no --ckpt_path
    assert "--ckpt_path" not in result.stdout.split("lit: SIGTERM: saved")[-1]
    assert not leftovers


@pytest.mark.slow
def test_sigterm_to_both_ddp_processes_50_ms_apart_saves_together_and_resumes_exactly(tmp_path, ddp_fit_reference):
    """A scheduler ending a job signals each process, a few ms apart. Lightning broadcasts from inside its SIGTERM
    handler: with the signals 50 ms apart both processes hung (no checkpoint, alive after 90 s, rank 1 orphaned).
    callbacks.preemption acts at the step both agree on: last.ckpt, exit 143, and an exact resume."""
    root = tmp_path / "stopped"
    # rank 1 gets SIGTERM at step 6 (in the second epoch) and rank 0, which started it, 50 ms later
    fault = ["--fault", "sigterm-at-step", "--at", "6", "--rank", "1", "--peer-after", "0.05"]
    command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), *fault, "--", *DDP_FIT,
               "--trainer.default_root_dir", str(root)]  # fmt: skip
    result, leftovers = run_in_own_group(command, timeout=90)  # a hang ends the test at 90 s
    assert result.returncode == 143, result.stdout[-3000:]
    assert not leftovers, "a process of the run outlived it"
    last = root / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    stopped_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert stopped_at in (6, 7)  # after the step running when the signals came, whichever process acted first
    assert f"lit: SIGTERM: saved {last} at step {stopped_at}" in result.stdout
    run_lit(*DDP_FIT, "--trainer.default_root_dir", str(root), "--ckpt_path", "last")
    assert_bit_identical(ddp_fit_reference, torch.load(last, map_location="cpu", weights_only=True))
