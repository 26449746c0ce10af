"""RELIABILITY row 4 beyond one process: a run stopped by SIGTERM leaves no data-loader worker behind, and under DDP
both processes, signalled apart, save last.ckpt at the same step and stop."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, ROOT, lit_env, run_lit
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


@pytest.mark.slow
def test_sigterm_to_both_ddp_processes_50_ms_apart_saves_together_and_resumes_exactly(tmp_path):
    """A scheduler ending a job signals each process, a few ms apart. Lightning broadcasts from inside its SIGTERM
    handler: with the signals 50 ms apart both processes hung (no checkpoint, alive after 90 s, rank 1 orphaned).
    callbacks.preemption acts at the step both agree on: last.ckpt, exit 143, and an exact resume."""
    fit = ["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--data.batch_size", "16", "--trainer.devices", "2",
           "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.max_epochs", "3",
           "--test_after_fit", "false"]  # fmt: skip
    root = tmp_path / "stopped"
    last = root / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    log = tmp_path / "stopped.log"
    command = [str(Path(sys.executable).parent / "lit"), *fit, "--trainer.default_root_dir", str(root)]
    with log.open("w") as out:  # its own session: the test then ends whatever the run left behind
        launcher = subprocess.Popen(
            command, env=lit_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while not last.is_file():  # the first epoch's: training is under way, the handlers are in place
            assert launcher.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        first_epoch = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
        (worker,) = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True,
                                                         text=True).stdout.split()]  # fmt: skip
        launcher.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        os.kill(worker, signal.SIGTERM)
        assert launcher.wait(timeout=90) == 143, log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while subprocess.run(["ps", "-p", str(worker)], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "the second process outlived the first by 30 s"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    output = log.read_text()
    stopped_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert first_epoch < stopped_at < 3 * first_epoch  # saved mid-run, at the step it stopped at
    assert f"lit: SIGTERM: saved {last} at step {stopped_at}" in output
    run_lit(*fit, "--trainer.default_root_dir", str(root), "--ckpt_path", "last")
    run_lit(*fit, "--trainer.default_root_dir", str(tmp_path / "reference"))
    load = lambda path: torch.load(path, map_location="cpu", weights_only=True)  # noqa: E731
    reference = tmp_path / "reference" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    assert_bit_identical(load(reference), load(last))
