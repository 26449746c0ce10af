"""Runs ``lit`` with one fault injected, for the reliability tests (RELIABILITY.md's harness): the fault is patched in
here, so the package itself carries no fault hooks.

    python tests/fault_runner.py --fault kill-while-saving --at 2 --after-bytes 4096 -- fit --config ...

Faults:
    kill-while-saving    SIGKILL itself after ``--after-bytes`` bytes of the ``--at``-th write of last.ckpt
    disk-full            the same write fails with ENOSPC instead
    kill-in-copyfileobj  SIGKILL itself if anything copies a file with shutil.copyfileobj (a cross-device move)
    kill-at-step         SIGKILL itself at the end of training batch ``--at`` (global step)
    sigterm-at-step      SIGTERM to itself there instead (a preemption)
    raise-at-step        raise an exception there instead (a bug)
With ``--rank R`` (DDP) the fault of the three above strikes process R only; the others run as usual. DDP's
processes are started again from this script's command line, so each gets the same fault options.
    nan-loss-at-step     the training loss of global step ``--at`` multiplied by NaN
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import torch


class FaultyFile:
    """A file object that lets ``after_bytes`` bytes through, then fails as ``fault`` says."""

    def __init__(self, file, after_bytes: int, fault: str) -> None:
        self.file, self.left, self.fault = file, after_bytes, fault

    def write(self, data) -> int:
        if len(data) >= self.left:
            self.file.write(bytes(data[: self.left]))
            self.file.flush()
            if self.fault == "kill-while-saving":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)


def break_checkpoint_writes(fault: str, at: int, after_bytes: int) -> None:
    real_save = torch.save
    writes = {"last": 0}

    def save(obj, file, *args, **kwargs):
        name = os.path.basename(getattr(file, "name", str(file)))
        if name.startswith("last.ckpt"):
            writes["last"] += 1
            if writes["last"] == at:
                file = FaultyFile(file, after_bytes, fault)
        return real_save(obj, file, *args, **kwargs)

    torch.save = save


def kill_in_copyfileobj() -> None:
    def copy(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    shutil.copyfileobj = copy


class InjectedFailure(RuntimeError):
    """The exception of ``raise-at-step``."""


def kill_at_step(
    step: int,
    signum: int | None = signal.SIGKILL,
    rank: int | None = None,
    peer_after: float | None = None,
    peer_pid_file: str | None = None,
) -> None:
    """At global step ``step`` (of process ``rank`` only, if given): the signal ``signum`` to this process, or an
    :class:`InjectedFailure` when ``signum`` is None. With ``peer_after``, the same signal that many seconds later to
    the other process, as a scheduler signals each process of a job a little apart: the one whose pid is in
    ``peer_pid_file``, else the parent (rank 0, which started this one under Lightning's DDP launcher)."""
    from lightning.pytorch.callbacks import Callback

    from lit_mlcourse.cli import LitCLI

    class KillAt(Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step != step or (rank is not None and trainer.global_rank != rank):
                return
            if signum is None:
                raise InjectedFailure(f"injected failure on rank {trainer.global_rank} at step {step}")
            os.kill(os.getpid(), signum)
            if peer_after is not None:
                peer = int(Path(peer_pid_file).read_text()) if peer_pid_file else os.getppid()
                threading.Timer(peer_after, os.kill, (peer, signum)).start()

    instantiate_trainer = LitCLI.instantiate_trainer

    def with_kill(self, **kwargs):
        trainer = instantiate_trainer(self, **kwargs)
        trainer.callbacks.insert(0, KillAt())  # before lit's own: the signal comes while the step is running
        return trainer

    LitCLI.instantiate_trainer = with_kill


def nan_loss_at_step(step: int) -> None:
    from lit_mlcourse.models.base import TaskModule

    training_step = TaskModule.training_step

    def poisoned(self, batch, batch_idx):
        loss = training_step(self, batch, batch_idx)
        return loss * float("nan") if self.global_step == step else loss

    TaskModule.training_step = poisoned


def inject(options: argparse.Namespace) -> None:
    if options.fault in ("kill-while-saving", "disk-full"):
        break_checkpoint_writes(options.fault, options.at, options.after_bytes)
    elif options.fault == "kill-in-copyfileobj":
        kill_in_copyfileobj()
    elif options.fault == "nan-loss-at-step":
        nan_loss_at_step(options.at)
    else:
        signals = {"sigterm-at-step": signal.SIGTERM, "sigusr1-at-step": signal.SIGUSR1, "raise-at-step": None}
        signum = signals.get(options.fault, signal.SIGKILL)
        kill_at_step(options.at, signum, options.rank, options.peer_after, options.peer_pid_file)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fault", required=True,
                        choices=["kill-while-saving", "disk-full", "kill-in-copyfileobj", "kill-at-step",
                                 "sigterm-at-step", "sigusr1-at-step", "raise-at-step",
                                 "nan-loss-at-step"])  # fmt: skip
    parser.add_argument("--at", type=int, default=1)
    parser.add_argument("--rank", type=int, default=None, help="the process the fault strikes (DDP)")
    parser.add_argument("--after-bytes", type=int, default=4096)
    parser.add_argument("--first-attempt-only", action="store_true",
                        help="under torchrun, strike before the first restart only")  # fmt: skip
    parser.add_argument("--peer-after", type=float, default=None,
                        help="with --rank, the same signal to the other process this many seconds later")  # fmt: skip
    parser.add_argument("--peer-pid-file", default=None, help="the other process's pid (default: the parent)")
    parser.add_argument("--restart-delay", type=float, default=0.0,
                        help="under torchrun, seconds the --rank process waits after a restart")  # fmt: skip
    options, lit_args = parser.parse_known_args()
    lit_args = lit_args[1:] if lit_args[:1] == ["--"] else lit_args
    torch.set_num_threads(1)
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    if restarted and options.rank is not None and int(os.environ.get("RANK", "0")) == options.rank:
        time.sleep(options.restart_delay)  # the other processes reach the rendezvous first
    if not (options.first_attempt_only and restarted):
        inject(options)
    from lit_mlcourse.cli import main as lit_main

    if options.rank is None:  # else DDP starts its other processes from this script's own command line
        sys.argv = ["lit", *lit_args]
    lit_main(lit_args)


if __name__ == "__main__":
    main()
