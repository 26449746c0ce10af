"""SLURM's requeue signal, acted on by every process of a run at the same step."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lit_mlcourse.checkpoints import HPC_CHECKPOINT


class SlurmRequeue(Callback):
    """On SLURM's requeue signal (``#SBATCH --signal=SIGUSR1@90`` with ``--requeue``): after the running training
    step, save ``hpc_ckpt_<n>.ckpt`` in the run folder, have rank 0 call ``scontrol requeue <job>`` and stop.

    Lightning's own handler saves the checkpoint inside the signal handler, wherever each process happens to be.
    Under DDP the processes get the signal at slightly different times: one enters the checkpoint's collectives while
    another is in the training step's, and both wait forever (Lightning #21406; measured here with 2 processes and
    the signal 50 ms apart). A checkpoint taken in the middle of a step is not a state to resume from either. Here
    the handler only notes the signal; after each optimizer step the processes agree on it (one all-reduce of a flag)
    and act together, at the step boundary where ``last.ckpt`` is saved too. Installing the handler first keeps
    Lightning's out (it leaves a signal that has a handler alone). Active only in a SLURM job with auto-requeue
    (Lightning's SLURMEnvironment, ``auto_requeue=True`` by default)."""

    def __init__(self) -> None:
        self.requeued = False
        self._signum: int | None = None
        self._previous: Any = None
        self._signalled = False
        self._seen_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        environment = trainer._accelerator_connector.cluster_environment  # the one Lightning's own handler checks
        if stage != "fit" or not isinstance(environment, SLURMEnvironment) or not environment.auto_requeue:
            return
        self._signum = int(environment.requeue_signal or signal.SIGUSR1)
        self._previous = signal.signal(self._signum, self._note_signal)

    def _note_signal(self, signum: int, frame: Any) -> None:
        self._signalled = True  # nothing else here: the process may be anywhere, a collective included

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._signum is None or self.requeued or trainer.global_step == self._seen_step:
            return  # not after a batch that only accumulated gradients: every process skips the same batches
        self._seen_step = trainer.global_step
        if not trainer.strategy.reduce_boolean_decision(self._signalled, all=False):
            return
        path = trainer.strategy.broadcast(str(next_hpc_checkpoint(Path(trainer.default_root_dir))))
        trainer.save_checkpoint(path, weights_only=False)  # the full state: optimizer, loops, callbacks
        job = requeue_job() if trainer.is_global_zero else None
        rank_zero_info(
            f"lit: SLURM's requeue signal ({signal.Signals(self._signum).name}): saved {path} at step "
            f"{trainer.global_step}; " + (f"requeued job {job}" if job else "the job was NOT requeued") + "; stopping"
        )
        self.requeued = True
        trainer.should_stop = True
        # Lightning validates after a stop requested mid-epoch (as for early stopping): not of a partial epoch, not in
        # the seconds before SLURM ends the job. The requeued job validates this epoch when it completes it.
        trainer.limit_val_batches = 0

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._signum is not None:
            signal.signal(self._signum, self._previous)
            self._signum = None


def next_hpc_checkpoint(run_dir: Path) -> Path:
    """``hpc_ckpt_<n>.ckpt`` with ``n`` one above the highest in ``run_dir`` (Lightning's name and numbering)."""
    numbers = [
        int(match.group(1))
        for path in run_dir.glob("hpc_ckpt_*.ckpt")
        if (match := HPC_CHECKPOINT.fullmatch(path.name))
    ]
    return run_dir / f"hpc_ckpt_{max(numbers, default=0) + 1}.ckpt"


def requeue_job() -> str | None:
    """``scontrol requeue <job>`` (no shell; the id was checked to be digits at start, runs.check_slurm_job_ids);
    the job's id when it was requeued, else ``None`` with a warning saying why."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        rank_zero_warn(f"lit: `scontrol requeue {job}` could not run ({error}): requeue the job by hand.")
        return None
    if result.returncode != 0:
        rank_zero_warn(f"lit: `scontrol requeue {job}` failed ({result.returncode}): {result.stderr.strip()}")
        return None
    return job
