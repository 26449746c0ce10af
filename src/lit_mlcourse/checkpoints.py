"""Checkpoint files that survive a kill or a full disk, and the choice of the checkpoint to resume from.

Lightning's own save writes through fsspec, whose local transaction writes a temporary file in $TMPDIR and moves it
into place, without fsync: a kill while the move copies across filesystems leaves a partial file under the final
name. Here every checkpoint is written next to its final name, flushed to disk, renamed over it and the folder
synced, so a reader sees the old file or the new one, never part of one.

``--ckpt_path last`` in Lightning silently trains from scratch when the run folder holds no ``last.ckpt``; here it
names the newest run of the experiment and its checkpoint, and refuses a missing, dangling or damaged ``last`` while
other checkpoints exist.
"""

from __future__ import annotations

import errno
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from lit_mlcourse.errors import UserInputError

TEMPORARY = ".tmp-"  # <final name>.tmp-<pid>: a checkpoint being written


class CheckpointWriteError(UserInputError, OSError):
    """A checkpoint could not be written (a full disk, a read-only folder)."""


HPC_CHECKPOINT = re.compile(r"hpc_ckpt_(\d+)\.ckpt")  # Lightning's name for the checkpoint saved on SLURM's signal


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO for local files, written atomically and durably (see the module's text)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r}).")
        if "://" in str(path):  # object stores have their own atomic uploads
            return super().save_checkpoint(checkpoint, path)
        write_atomically(checkpoint, Path(path))
        remove_older_hpc_checkpoints(Path(path))


def remove_older_hpc_checkpoints(saved: Path) -> None:
    """After ``hpc_ckpt_<n>.ckpt`` is safely on disk, its older siblings go: Lightning saves one more on every
    SLURM signal (each a full checkpoint, optimizer included) and never deletes any, while a requeued job resumes
    from the newest only (runs.requeued_run)."""
    match = HPC_CHECKPOINT.fullmatch(saved.name)
    if match is None:
        return
    for sibling in saved.parent.iterdir():
        older = HPC_CHECKPOINT.fullmatch(sibling.name)
        if older is not None and int(older.group(1)) < int(match.group(1)):
            sibling.unlink(missing_ok=True)


def write_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save`` into ``<path>.tmp-<pid>``, fsync, rename over ``path``, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}{TEMPORARY}{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if _disk_full(error):
            raise CheckpointWriteError(
                f"no space left on the device to write the checkpoint {path} (the previous {path.name}, if any, is "
                "intact): free space, or set trainer.default_root_dir to a folder on another disk, and resume with "
                "--ckpt_path last",
            ) from None
        raise
    _sync_folder(path.parent)


def _disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` or an error it arose from is ENOSPC / EDQUOT (torch's zip writer turns the OSError of a
    failed write into a RuntimeError of its own when it closes the file)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX: fsync the directory)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported (Windows): the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the half-written checkpoints (``*.tmp-<pid>``) a killed process left in ``folder`` (and in its
    ``checkpoints/``) whose writer is gone; returns them."""
    removed = []
    for candidate in [*folder.glob(f"*.ckpt{TEMPORARY}*"), *folder.glob(f"checkpoints/*.ckpt{TEMPORARY}*")]:
        pid = candidate.name.rsplit(TEMPORARY, 1)[1]
        if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid():
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from (missing, a dangling link, damaged, or holding non-finite weights), or
    ``None`` when it loads with ``weights_only=True`` and every weight is finite."""
    if path.is_symlink() and not path.exists():
        return f"a link to {os.readlink(path)}, which does not exist"
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = str(error).splitlines()[0].split(". ")[0][:200]  # torch's first sentence says what broke
        return f"damaged ({type(error).__name__}: {reason})"
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        return "not a training checkpoint (no state_dict)"
    bad = [key for key, value in state.items() if torch.is_tensor(value) and value.is_floating_point()
           and not bool(torch.isfinite(value).all())]  # fmt: skip
    if bad:
        return f"holding non-finite weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
    return None


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoints of a run folder, newest first: ``checkpoints/*.ckpt`` and SLURM's ``hpc_ckpt_<n>.ckpt``."""
    found = [*run_dir.glob("checkpoints/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    return sorted(found, key=lambda path: _mtime(path), reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return -math.inf


def newest_runs(experiment_dir: Path) -> list[Path]:
    """The ``version_<N>`` run folders under ``experiment_dir``, highest N first."""
    runs = [folder for folder in experiment_dir.glob("version_*") if folder.is_dir() and folder.name[8:].isdigit()]
    return sorted(runs, key=lambda folder: int(folder.name[8:]), reverse=True)


def resume_point(runs: list[Path]) -> tuple[Path, Path] | None:
    """For ``--ckpt_path last``: the first of the run folders ``runs`` that holds a checkpoint, and its
    ``checkpoints/last.ckpt``. ``None`` when none holds a checkpoint (a fresh start). A ``last.ckpt`` that cannot
    be resumed from is an error naming it and the newest checkpoint that can."""
    for run in runs:
        remove_stale_temporaries(run)
        checkpoints = run_checkpoints(run)
        if not checkpoints:
            continue
        last = run / "checkpoints" / "last.ckpt"
        problem = checkpoint_problem(last)
        if problem is None:
            return run, last
        alternatives = [path for path in checkpoints if path != last and checkpoint_problem(path) is None]
        hint = (
            f"the newest valid checkpoint is {alternatives[0]}: resume from it with --ckpt_path {alternatives[0]}"
            if alternatives
            else "no other checkpoint of the run loads either: start afresh without --ckpt_path"
        )
        raise UserInputError(
            f"--ckpt_path last: {last} is {problem}, though {run} holds {len(checkpoints)} checkpoint(s); {hint}."
        )
    return None
