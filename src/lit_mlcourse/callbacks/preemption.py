"""Preemption signals, acted on by every process of a run at the same step: SIGTERM (a scheduler ending the job) and
SLURM's requeue signal."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_mlcourse.checkpoints import HPC_CHECKPOINT

REQUEUE, TERMINATE = 0, 1  # places in the flags the processes agree on


class NotRequeued(RuntimeError):
    """SLURM's requeue signal came, the checkpoint was saved, but ``scontrol requeue`` failed: lit exits 1."""


class StoppedForRequeue(Exception):
    """A command of several runs (``lit cv``, the studies) was requeued: it stops instead of starting the next run
    in the seconds before SLURM ends the job; the requeued job runs it again from its start."""


class PreemptionSignals(Callback):
    """On SIGTERM: after the running training step, save ``last.ckpt`` and stop (exit 143; continue with
    ``--ckpt_path last``). On SLURM's requeue signal (``#SBATCH --signal=SIGUSR1@90`` with ``--requeue``): after the
    running step, save ``hpc_ckpt_<n>.ckpt`` in the run folder, have rank 0 call ``scontrol requeue <job>`` and stop
    (the requeued job resumes from it, runs.requeued_run).

    Lightning acts inside the signal handlers, wherever each process happens to be: it broadcasts from its SIGTERM
    handler and saves the checkpoint from its SIGUSR1 handler. Under DDP the processes get a signal at slightly
    different times (a scheduler signals each one), one enters those collectives while another is in the training
    step's, and both wait forever (Lightning #21406; measured here with 2 processes signalled 50 ms apart: no
    checkpoint and no exit after 90 s, for either signal). A checkpoint taken in the middle of a step is not a state
    to resume from either. Here the handlers only note the signal; after each optimizer step (and at each epoch's
    end, after its validation) the processes agree on what was noted (one all-reduce of two flags; none in one
    process) and act together, at the step boundary where ``last.ckpt`` is saved too. The SLURM handler is installed
    before Lightning's (which leaves a signal that has a handler alone), in a SLURM job with auto-requeue (Lightning's
    SLURMEnvironment default); the SIGTERM handler replaces Lightning's when the sanity check and training start
    and, in the process that started the others (Lightning's launcher), passes the signal on to them as Lightning's
    does."""

    def __init__(self) -> None:
        self.requeued = False
        self.requeue_failure: str | None = None  # why the job was not requeued: the command then fails
        self.requeue_checkpoint: str | None = None
        self._flags = [0, 0]
        self._previous: dict[int, Any] = {}
        self._seen_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        environment = trainer._accelerator_connector.cluster_environment  # the one Lightning's own handler checks
        if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
            self._install(int(environment.requeue_signal or signal.SIGUSR1), REQUEUE)
        # Also before Lightning's: it puts back the handlers it found when it tears down, and a scheduler's second
        # SIGTERM, arriving while the process stops, must be noted, not kill it (exit -15 instead of 143).
        self._install(signal.SIGTERM, TERMINATE, trainer.strategy.launcher)

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(signal.SIGTERM, TERMINATE, trainer.strategy.launcher)  # Lightning registered its own just before

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(signal.SIGTERM, TERMINATE, trainer.strategy.launcher)
        self._seen_step = trainer.global_step  # a first batch that only accumulates gradients is no step boundary

    def _install(self, signum: int, flag: int, launcher: Any = None) -> None:
        def note(received: int, frame: Any) -> None:
            self._flags[flag] = 1  # nothing else here: the process may be anywhere, a collective included
            if launcher is not None and hasattr(launcher, "kill"):
                launcher.kill(received)  # the processes Lightning started from this one (none elsewhere)

        self._previous.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, note)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step == self._seen_step:
            return  # a batch that only accumulated gradients: every process skips the same batches
        self._seen_step = trainer.global_step
        self._act(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the epoch's validation, once the checkpoint callbacks (run after every other) have taken its score.
        self._act(trainer)

    def _act(self, trainer: L.Trainer) -> None:
        flags = self._flags
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            agreed = torch.tensor(self._flags, device=trainer.strategy.root_device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            flags = agreed.tolist()
        if flags[TERMINATE]:
            path = last_checkpoint(trainer)
            if path is not None:
                trainer.save_checkpoint(path, weights_only=False)
            rank_zero_info(f"lit: SIGTERM: saved {path} at step {trainer.global_step}" if path else "lit: SIGTERM")
            raise SIGTERMException  # Lightning's own stop: lit exits 143
        if flags[REQUEUE] and not self.requeued:
            self._requeue(trainer)

    def _requeue(self, trainer: L.Trainer) -> None:
        path = trainer.strategy.broadcast(str(next_hpc_checkpoint(Path(trainer.default_root_dir))))
        trainer.save_checkpoint(path, weights_only=False)  # the full state: optimizer, loops, callbacks
        job, failure = trainer.strategy.broadcast(requeue_job() if trainer.is_global_zero else (None, None))
        # Said now, with why: SLURM may kill the process before the command ends.
        rank_zero_info(
            f"lit: SLURM's requeue signal: saved {path} at step {trainer.global_step}; "
            + (f"requeued job {job}" if job else f"the job was NOT requeued: {failure}")
            + "; stopping"
        )
        self.requeued = True
        # Exiting 0 would end the job as COMPLETED, the training silently cut short: the command fails instead.
        self.requeue_failure, self.requeue_checkpoint = failure, path
        trainer.should_stop = True
        # Lightning validates after a stop requested mid-epoch (as for early stopping): not of a partial epoch, not in
        # the seconds before SLURM ends the job. The requeued job validates this epoch when it completes it.
        trainer.limit_val_batches = 0

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def last_checkpoint(trainer: L.Trainer) -> str | None:
    """Where the run's ``last.ckpt`` goes (its ModelCheckpoint with ``save_last``), if it has one."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath:
            return os.path.join(callback.dirpath, callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION)
    return None


def next_hpc_checkpoint(run_dir: Path) -> Path:
    """``hpc_ckpt_<n>.ckpt`` with ``n`` one above the highest in ``run_dir`` (Lightning's name and numbering)."""
    numbers = [
        int(match.group(1))
        for path in run_dir.glob("hpc_ckpt_*.ckpt")
        if (match := HPC_CHECKPOINT.fullmatch(path.name))
    ]
    return run_dir / f"hpc_ckpt_{max(numbers, default=0) + 1}.ckpt"


def requeue_job() -> tuple[str | None, str | None]:
    """``scontrol requeue <job>`` (no shell; the id was checked to be digits at start, runs.check_slurm_job_ids):
    ``(job id, None)`` when it was requeued, else ``(None, why not)``."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"`scontrol requeue {job}` could not run ({error})"
    if result.returncode != 0:
        message = result.stderr.strip() or result.stdout.strip() or "no message"
        return None, f"`scontrol requeue {job}` failed (exit {result.returncode}): {message}"
    return job, None
