"""RELIABILITY row 27: lit under torchrun when a process fails. Its own traceback reaches torchrun's error file and
"Root Cause" report (lit records it as torch's ``@record`` would), and with ``--max-restarts 1`` the restarted group
connects (lit_mlcourse.elastic), resumes from last.ckpt and ends with the weights of a run that never failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DDP_FIT, ROOT, lit_env
from test_resume_parity import assert_bit_identical


def torchrun(tmp_path: Path, *fault: str, restarts: int, epochs: int) -> subprocess.CompletedProcess:
    """DDP_FIT (2 processes, 4 steps an epoch) under torchrun with ``--ckpt_path last``, its max_epochs ``epochs``."""
    env = {key: value for key, value in lit_env().items() if not key.startswith("SLURM_")}  # see test_torchrun.py
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--max-restarts", str(restarts), "--log-dir", str(tmp_path / "torchrun"),
               str(ROOT / "tests" / "fault_runner.py"), *fault, "--", *DDP_FIT, "--trainer.max_epochs", str(epochs),
               "--trainer.default_root_dir", str(tmp_path / "runs"), "--ckpt_path", "last"]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)


def failed_rank_error(tmp_path: Path) -> dict:
    (error_file,) = (tmp_path / "torchrun").glob("*/attempt_0/1/error.json")
    return json.loads(error_file.read_text())["message"] | {"file": str(error_file)}


@pytest.mark.slow
def test_torchrun_reports_the_failed_processs_own_traceback_as_the_root_cause(tmp_path):
    run = torchrun(tmp_path, "--fault", "raise-at-step", "--at", "2", "--rank", "1", restarts=0, epochs=1)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-4000:]
    error = failed_rank_error(tmp_path)
    assert error["message"] == "InjectedFailure: injected failure on rank 1 at step 2"
    assert 'raise InjectedFailure(f"injected failure on rank' in error["extraInfo"]["py_callstack"]
    # torchrun's report lists every failed process with its error file; the root cause is the earliest by the
    # second, which rank 0 (that saw rank 1's connection close) can tie with.
    report = output[output.rindex("fault_runner.py FAILED") :]
    assert error["file"] in report and "InjectedFailure: injected failure on rank 1 at step 2" in report


@pytest.mark.slow
def test_a_group_torchrun_restarts_resumes_from_last_and_ends_with_the_uninterrupted_weights(
    tmp_path, ddp_fit_reference
):
    # rank 1 fails at step 6, in the second epoch, after the first epoch's last.ckpt
    fault = ["--fault", "raise-at-step", "--at", "6", "--rank", "1", "--first-attempt-only", "--restart-delay", "3"]
    run = torchrun(tmp_path, *fault, restarts=1, epochs=3)
    output = run.stdout + run.stderr
    # Before lit_mlcourse.elastic, the restart failed here: "Gloo connectFullMesh failed ... Connection refused".
    assert run.returncode == 0, output[-4000:]
    assert "injected failure on rank 1 at step 6" in failed_rank_error(tmp_path)["message"]
    resumed = tmp_path / "runs" / "quickstart" / "version_0"
    assert f"lit: resuming {resumed} from {resumed / 'checkpoints' / 'last.ckpt'}" in output
    assert sorted(path.name for path in resumed.parent.iterdir()) == ["version_0"]  # the restart continued there
    assert_bit_identical(ddp_fit_reference, torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True))
    assert ddp_fit_reference["global_step"] == 12
