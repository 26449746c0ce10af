"""Checkpoint files under faults (RELIABILITY.md rows 5-8): a kill or a full disk while writing never leaves a partial
file under a final name, and ``--ckpt_path last`` never starts afresh while the run holds checkpoints."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, ROOT, lit_env, run_command

from lit_mlcourse.checkpoints import checkpoint_problem
from lit_mlcourse.cli import main


def quickstart(root: Path, *args: str) -> list[str]:
    return ["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.default_root_dir", str(root),
            "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
            *args]  # fmt: skip


def with_fault(
    fault: str, *args: str, env: dict | None = None, fresh_interpreter: bool = False
) -> subprocess.CompletedProcess:
    """``python tests/fault_runner.py --fault fault *args``, forked from the lit zygote (conftest.run_command)."""
    command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", fault, *args]
    return run_command(command, env=env or lit_env(), timeout=180, fresh_interpreter=fresh_interpreter)


def loads(path: Path) -> int:
    """The global step of the checkpoint ``path``, loaded as data only."""
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def test_a_kill_while_writing_last_leaves_the_previous_one_and_the_next_start_cleans_up(tmp_path):
    # the 2nd write of last.ckpt (end of epoch 1) dies after 4 KiB
    run = with_fault("kill-while-saving", "--at", "2", "--", *quickstart(tmp_path, "--trainer.max_epochs", "3"))
    assert run.returncode == -9, run.stderr
    checkpoints = tmp_path / "quickstart" / "version_0" / "checkpoints"
    assert loads(checkpoints / "last.ckpt") == 3  # the end of epoch 0, intact
    leftovers = list(checkpoints.glob("last.ckpt.tmp-*"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == 4096  # the half-written file, under its own name
    main(quickstart(tmp_path, "--trainer.max_epochs", "3", "--ckpt_path", "last"))
    assert loads(checkpoints / "last.ckpt") == 9 and not list(checkpoints.glob("*.tmp-*"))


def test_a_full_disk_while_writing_stops_the_run_naming_the_file(tmp_path):
    run = with_fault("disk-full", "--at", "2", "--", *quickstart(tmp_path, "--trainer.max_epochs", "3"))
    checkpoints = tmp_path / "quickstart" / "version_0" / "checkpoints"
    assert run.returncode == 2, run.stderr
    assert f"lit: error: no space left on the device to write the checkpoint {checkpoints / 'last.ckpt'}" in run.stderr
    assert loads(checkpoints / "last.ckpt") == 3 and not list(checkpoints.glob("*.tmp-*"))
    assert "epoch 2/3" not in run.stdout  # training stopped at the failed save, it did not go on without checkpoints


def test_a_temporary_folder_on_another_filesystem_is_never_copied_across(tmp_path):
    # Lightning's own save writes in $TMPDIR and moves the file: across filesystems the move copies, and a kill then
    # leaves a partial file under the final name. Here nothing is copied: copyfileobj would kill the run.
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.fail("this check needs a tmpfs at /dev/shm (Linux)")
    temporary = shm / f"lit-test-{tmp_path.name}"
    temporary.mkdir(exist_ok=True)
    env = {**lit_env(), "TMPDIR": str(temporary)}
    # A fresh interpreter: tempfile caches its folder when first asked, which the zygote's imports did under its TMPDIR.
    run = with_fault("kill-in-copyfileobj", "--", *quickstart(tmp_path, "--trainer.max_epochs", "2"), env=env,
                     fresh_interpreter=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert loads(tmp_path / "quickstart" / "version_0" / "checkpoints" / "last.ckpt") == 6
    temporary.rmdir()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder after two epochs: checkpoints/last.ckpt and best.ckpt."""
    root = tmp_path_factory.mktemp("trained")
    main(quickstart(root, "--trainer.max_epochs", "2"))
    return root


def damaged(run_root: Path, tmp_path: Path, damage) -> Path:
    """A copy of the trained runs with ``damage`` done to last.ckpt."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(run_root, root)
    damage(root / "quickstart" / "version_0" / "checkpoints" / "last.ckpt")
    return root


def truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_central_directory(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = data.rfind(b"PK\x01\x02")  # the zip's last central-directory entry
    data[start : start + 64] = bytes(byte ^ 0xFF for byte in data[start : start + 64])
    path.write_bytes(bytes(data))


def dangling(path: Path) -> None:
    path.unlink()
    path.symlink_to("epoch=9-step=99.ckpt")  # relative, as save_last="link" makes them


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(truncate_half, "is damaged (RuntimeError: PytorchStreamReader failed reading zip archive"),
     (lambda path: path.write_bytes(b""), "is empty (0 bytes)"),
     (flip_central_directory, "is damaged"),
     (lambda path: path.unlink(), "is missing"),
     (dangling, "is a link to epoch=9-step=99.ckpt, which does not exist")],
    ids=["truncated to half", "zero bytes", "central directory flipped", "deleted", "a dangling link"],
)  # fmt: skip
def test_a_bad_last_checkpoint_is_an_error_naming_the_newest_valid_one(trained, tmp_path, capsys, damage, problem):
    root = damaged(trained, tmp_path, damage)
    checkpoints = root / "quickstart" / "version_0" / "checkpoints"
    with pytest.raises(SystemExit) as exit_info:
        main(quickstart(root, "--trainer.max_epochs", "3", "--ckpt_path", "last"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"--ckpt_path last: {checkpoints / 'last.ckpt'} {problem}" in err
    assert f"the newest valid checkpoint is {checkpoints / 'best.ckpt'}" in err
    assert sorted(path.name for path in (root / "quickstart").iterdir()) == ["version_0"]  # nothing trained afresh


def test_non_finite_weights_are_not_resumed_from(trained, tmp_path, capsys):
    def poison(path: Path) -> None:
        checkpoint = torch.load(path, weights_only=True)
        next(iter(checkpoint["state_dict"].values())).fill_(float("nan"))
        torch.save(checkpoint, path)

    root = damaged(trained, tmp_path, poison)
    assert "holding non-finite weights" in checkpoint_problem(
        root / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    )
    with pytest.raises(SystemExit):
        main(quickstart(root, "--trainer.max_epochs", "3", "--ckpt_path", "last"))
    assert "holding non-finite weights (net.features.0.0.weight)" in capsys.readouterr().err


def test_last_with_nothing_to_resume_starts_afresh_and_validate_refuses(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", *quickstart(tmp_path)[1:], "--ckpt_path", "last"])
    assert exit_info.value.code == 2
    assert (
        f"--ckpt_path last: no run under {tmp_path / 'quickstart'} holds a checkpoint to load"
        in capsys.readouterr().err
    )
    main(quickstart(tmp_path, "--trainer.max_epochs", "1", "--ckpt_path", "last"))
    assert loads(tmp_path / "quickstart" / "version_0" / "checkpoints" / "last.ckpt") == 3


def test_last_is_the_final_state_even_when_the_best_stopped_improving(tmp_path):
    # mode max on a loss: the first epoch stays the best. Lightning 2.6 would leave last.ckpt at that epoch too.
    main(quickstart(tmp_path, "--trainer.max_epochs", "3", "--checkpoint.mode", "max"))
    checkpoints = tmp_path / "quickstart" / "version_0" / "checkpoints"
    assert (loads(checkpoints / "best.ckpt"), loads(checkpoints / "last.ckpt")) == (3, 9)


def test_a_non_finite_loss_stops_before_the_step_naming_it_and_last_keeps_the_good_state(tmp_path):
    # epoch 0: steps 0-2, last.ckpt at step 3; the loss of step 4 (epoch 1, batch 1) is NaN
    run = with_fault("nan-loss-at-step", "--at", "4", "--", *quickstart(tmp_path, "--trainer.max_epochs", "3"))
    assert run.returncode == 2, run.stderr
    assert (
        "lit: error: the training loss is nan at step 4 (epoch 1, batch 1); the batch's inputs are all finite. The "
        "run stopped before" in run.stderr
    )
    last = tmp_path / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    assert loads(last) == 3 and checkpoint_problem(last) is None  # finite, and what --ckpt_path last resumes
