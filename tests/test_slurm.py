"""SLURM emulated on one machine: the `lit` command (a subprocess) with the variables srun sets, a fake `scontrol`
first on PATH, and SIGUSR1 as `#SBATCH --signal=SIGUSR1@90` sends it. A requeued job (SLURM_RESTART_COUNT=1)
continues in the run folder of its first attempt, from the checkpoint Lightning saved on the signal."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, DDP_FIT, ROOT, lit_env
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from test_resume_parity import assert_bit_identical

from lit_mlcourse.runs import SLURM_JOB_FILE, requeued_run

JOB_ID = "4242"
# What srun sets for a one-task job. A job name of "bash" or "interactive" would make Lightning ignore SLURM.
SLURM = {"SLURM_JOB_ID": JOB_ID, "SLURM_JOB_NAME": "lit-test", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1",
         "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}  # fmt: skip
STEPS_PER_EPOCH = 20  # ceil(1,221 training digits / 64)


def slurm_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """lit_env() with SLURM's variables (none of the machine's own, should the tests run in a SLURM job)."""
    env = {key: value for key, value in lit_env().items() if not key.startswith("SLURM_")}
    env.update(SLURM, **extra)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def fake_command(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def wait_for(condition, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"lit exited {process.returncode} early:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.mark.slow
def test_sigusr1_checkpoints_and_requeues_and_the_requeued_job_resumes_in_its_run_folder(tmp_path):
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.calls"
    fake_command(bin_dir, "scontrol", f'echo "$@" >> {shlex.quote(str(calls))}')
    lit = [str(Path(sys.executable).parent / "lit"), "fit", "--config", str(CONFIGS / "quickstart.yaml"),
           "--data.batch_size", "64", "--trainer.default_root_dir", str(tmp_path / "runs")]  # fmt: skip
    run = tmp_path / "runs" / "quickstart" / "version_0"

    # First attempt: long enough to be still training when SLURM's signal comes.
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen([*lit, "--trainer.max_epochs", "200"], cwd=tmp_path, env=slurm_env(bin_dir),
                                 stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            # One epoch done: the trainer's signal handlers are in place (before, SIGUSR1 would kill the process).
            wait_for((run / "checkpoints" / "last.ckpt").is_file, first, log, timeout=60)
            first.send_signal(signal.SIGUSR1)
            wait_for(calls.is_file, first, log, timeout=30)  # the checkpoint is saved before scontrol is called
            first.send_signal(signal.SIGTERM)  # as SLURM ends the job it requeues
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    assert calls.read_text().splitlines() == [f"requeue {JOB_ID}"], log.read_text()
    assert (run / SLURM_JOB_FILE).read_text().strip() == JOB_ID
    hpc = torch.load(run / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=True)
    assert hpc["global_step"] >= STEPS_PER_EPOCH

    # The requeued job: same job id, SLURM_RESTART_COUNT=1, a few epochs past the checkpoint's.
    max_epochs = hpc["epoch"] + 2
    second = subprocess.run([*lit, "--trainer.max_epochs", str(max_epochs)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=slurm_env(bin_dir, SLURM_RESTART_COUNT="1"))  # fmt: skip
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert f"lit: SLURM job {JOB_ID} was requeued (restart 1): resuming {run} from {run / 'hpc_ckpt_1.ckpt'}" in output
    assert f"Restored all states from the checkpoint at {run / 'hpc_ckpt_1.ckpt'}" in output
    assert sorted(path.name for path in run.parent.iterdir()) == ["version_0"]  # no new run folder
    assert json.loads((run / "summary.json").read_text())["run_dir"] == str(run)
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == max_epochs * STEPS_PER_EPOCH  # continued from the checkpoint's step
    # metrics.csv continues: the first attempt's epochs, then the rest, each epoch's validation once.
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(row["epoch"]) for row in rows if row.get("val/loss")] == list(range(max_epochs))
    assert calls.read_text().splitlines() == [f"requeue {JOB_ID}"]  # not requeued again


def test_a_requeued_cv_stops_at_the_fold_it_struck_instead_of_starting_the_next(tmp_path):
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.calls"
    fake_command(bin_dir, "scontrol", f'echo "$@" >> {shlex.quote(str(calls))}')
    command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", "sigusr1-at-step", "--at", "3",
               "--", "cv", "--config", str(CONFIGS / "quickstart.yaml"), "--folds", "2", "--trainer.max_epochs", "2",
               "--trainer.default_root_dir", str(tmp_path / "runs")]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=slurm_env(bin_dir), capture_output=True, text=True, timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert calls.read_text().splitlines() == [f"requeue {JOB_ID}"]
    run = tmp_path / "runs" / "quickstart" / "version_0"
    assert (run / "fold_0" / "hpc_ckpt_1.ckpt").is_file() and not (run / "fold_1").exists()
    assert "lit: SLURM's requeue signal: stopped at fold_0; the requeued job runs the command again" in output


@pytest.mark.parametrize("subcommand", ["fit", "cv"])
def test_a_failed_requeue_keeps_the_checkpoint_and_fails_the_job_naming_it(tmp_path, subcommand):
    """Exit 0 would end the job COMPLETED with its training cut short: a failed `scontrol requeue` fails it."""
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "scontrol", 'echo "scontrol: error: Requested operation is presently disabled" >&2; exit 1')
    command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", "sigusr1-at-step", "--at", "3",
               "--", subcommand, "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.max_epochs", "2",
               "--trainer.default_root_dir", str(tmp_path / "runs")]  # fmt: skip
    if subcommand == "cv":
        command += ["--folds", "2"]
    result = subprocess.run(command, cwd=tmp_path, env=slurm_env(bin_dir), capture_output=True, text=True, timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    failure = f"`scontrol requeue {JOB_ID}` failed (exit 1): scontrol: error: Requested operation is presently disabled"
    assert f"the job was NOT requeued: {failure}; stopping" in output  # said at once: SLURM may kill it before the end
    run = tmp_path / "runs" / "quickstart" / "version_0"
    if subcommand == "fit":
        hpc = run / "hpc_ckpt_1.ckpt"
        assert f"{failure}; the job ends here: resubmit it with --ckpt_path {hpc}" in output
    else:  # cv does not resume: the job fails at the first fold, not after training the others
        hpc = run / "fold_0" / "hpc_ckpt_1.ckpt"
        assert f"lit: SLURM's requeue signal: {failure}; the job ends here: submit the command again" in output
        assert not (run / "fold_1").exists()
    assert torch.load(hpc, map_location="cpu", weights_only=True)["global_step"] == 3


@pytest.mark.slow
def test_two_processes_signalled_50_ms_apart_checkpoint_together_requeue_once_and_resume_exactly(
    tmp_path, ddp_fit_reference
):
    """Two tasks started by hand as srun starts them (SLURM_PROCID 0 and 1); SIGUSR1 to rank 0 at step 6 and 50 ms
    later to rank 1. With Lightning's own handler rank 0 hung in the checkpoint's collectives (no checkpoint, no
    requeue after 60 s); lit's callbacks.preemption acts at the step both processes agree on."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.calls"
    fake_command(bin_dir, "scontrol", f'echo "$@" >> {shlex.quote(str(calls))}')
    run = tmp_path / "runs" / "quickstart" / "version_0"
    tasks = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NODELIST": "localhost",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(find_free_network_port())}  # fmt: skip
    rank_1_pid = tmp_path / "rank1.pid"
    fault = ["--fault", "sigusr1-at-step", "--at", "6", "--rank", "0", "--peer-after", "0.05",
             "--peer-pid-file", str(rank_1_pid)]  # fmt: skip

    def start_tasks(name: str, program: list[str], **extra: str) -> list[subprocess.Popen]:
        command = [*program, *DDP_FIT, "--trainer.default_root_dir", str(tmp_path / "runs")]
        tasks_started = []
        for rank in (0, 1):
            env = slurm_env(bin_dir, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), **tasks, **extra)
            log = (tmp_path / f"{name}{rank}.log").open("w")
            tasks_started.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT))
        return tasks_started

    def finish(started: list[subprocess.Popen], name: str) -> tuple[list[int], str]:
        try:
            codes = [process.wait(timeout=90) for process in started]  # a hang fails here
        finally:
            for process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return codes, "".join((tmp_path / f"{name}{rank}.log").read_text() for rank in (0, 1))

    first = start_tasks("first", [sys.executable, str(ROOT / "tests" / "fault_runner.py"), *fault, "--"])
    rank_1_pid.write_text(str(first[1].pid))
    codes, output = finish(first, "first")
    assert codes == [0, 0], output[-4000:]  # both stop on their own after the requeue
    assert calls.read_text().splitlines() == [f"requeue {JOB_ID}"], output[-4000:]  # once, by rank 0
    hpc = torch.load(run / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=True)
    assert hpc["global_step"] in (6, 7)  # after the step running when the signals came
    assert f"saved {run / 'hpc_ckpt_1.ckpt'} at step {hpc['global_step']}; requeued job {JOB_ID}; stopping" in output

    # The requeued job: the same two tasks, no ckpt_path, SLURM_RESTART_COUNT=1; it ends as a run never signalled.
    codes, output = finish(start_tasks("second", [str(Path(sys.executable).parent / "lit")], SLURM_RESTART_COUNT="1"),
                           "second")  # fmt: skip
    assert codes == [0, 0], output[-4000:]
    assert f"resuming {run} from {run / 'hpc_ckpt_1.ckpt'}" in output
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert_bit_identical(ddp_fit_reference, last)


def test_the_requeued_run_is_the_folder_of_the_same_job_with_a_checkpoint(tmp_path, monkeypatch):
    for key in [key for key in os.environ if key.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    folder = tmp_path / "quickstart"
    for version, job in (("version_0", JOB_ID), ("version_1", "77"), ("version_2", JOB_ID)):
        (folder / version / "checkpoints").mkdir(parents=True)
        (folder / version / SLURM_JOB_FILE).write_text(job + "\n")
    (folder / "version_1" / "hpc_ckpt_1.ckpt").touch()  # another job's
    (folder / "version_0" / "checkpoints" / "last.ckpt").touch()
    monkeypatch.setenv("SLURM_JOB_ID", JOB_ID)
    assert requeued_run(folder) is None  # the first attempt (no SLURM_RESTART_COUNT) starts a new run
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    # version_2 names the job too, but holds nothing to resume from; without an hpc checkpoint, last.ckpt
    assert requeued_run(folder) == (folder / "version_0", folder / "version_0" / "checkpoints" / "last.ckpt")
    for number in (2, 10):
        (folder / "version_0" / f"hpc_ckpt_{number}.ckpt").touch()
    assert requeued_run(folder) == (folder / "version_0", folder / "version_0" / "hpc_ckpt_10.ckpt")
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    assert requeued_run(folder) is None


@pytest.mark.parametrize("script", ["single_node.sbatch", "multi_node.sbatch"])
def test_sbatch_script_runs_lit_fit_with_slurms_layout(tmp_path, script):
    """The script under bash with a fake srun that records its arguments: the config is the first argument,
    devices and num_nodes come from SLURM's variables, the other arguments pass through."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "srun.calls"
    fake_command(bin_dir, "srun", f'printf "%s\\n" "$@" > {shlex.quote(str(calls))}')
    env = slurm_env(bin_dir, SLURM_NTASKS_PER_NODE="4", SLURM_NNODES="2", SLURM_CPUS_PER_TASK="8")
    command = ["bash", str(ROOT / "scripts" / "slurm" / script), "configs/quickstart.yaml", "--name", "a b"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    layout = ["--trainer.devices", "4", "--trainer.num_nodes", "2"]
    called = calls.read_text().splitlines()
    assert called == ["lit", "fit", "--config", "configs/quickstart.yaml", *layout, "--name", "a b"]


def test_sbatch_script_needs_a_config(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts" / "slurm" / "single_node.sbatch")], cwd=tmp_path,
                            env=slurm_env(tmp_path), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0 and "usage: sbatch scripts/slurm/single_node.sbatch CONFIG" in result.stderr
