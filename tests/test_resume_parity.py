"""A run killed with SIGKILL and resumed with ``--ckpt_path last`` ends bit-identical to the run that was never
interrupted (RELIABILITY.md rows 1-3, 23): weights, optimizer and schedule state, the learning-rate trace and the
validation metrics, with shuffling, dropout, augmentation and 0 or 2 loader workers. Every run is a process of its own
(forked from the lit zygote: conftest.run_command) with one thread (bit-exactness depends on the thread count)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, ROOT, run_command

# quick start (dropout 0.1, shuffled): 5 batches a round, 3 epochs, last.ckpt every 3 steps, a warmup of 8 steps
QUICKSTART = ["--config", str(CONFIGS / "quickstart.yaml"), "--trainer.limit_train_batches", "5",
              "--trainer.limit_val_batches", "2", "--trainer.max_epochs", "3", "--checkpoint.every_n_train_steps", "3",
              "--model.lr_scheduler.init_args.warmup_fraction", "0", "--model.lr_scheduler.init_args.warmup_steps", "8",
              "--trainer.log_every_n_steps", "1", "--test_after_fit", "false"]  # fmt: skip
# SimCLR on digits: random crops, colour and grayscale per sample in the loader workers
SIMCLR = ["--config", str(CONFIGS / "digits_simclr.yaml"), "--trainer.limit_train_batches", "4",
          "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "1",
          "--checkpoint.every_n_train_steps", "3",
          "--model.backbone.init_args.widths", "[16, 32]", "--model.projection_hidden", "64",
          "--trainer.log_every_n_steps", "1", "--test_after_fit", "false"]  # fmt: skip


def lit_run(
    root: Path, args: list[str], *extra: str, kill_at: int | None = None, signal: str = "kill"
) -> subprocess.CompletedProcess:
    if kill_at is None:
        command = [sys.executable, "-m", "lit_mlcourse", "fit", *args, "--trainer.default_root_dir", str(root), *extra]
    else:
        command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", f"{signal}-at-step", "--at",
                   str(kill_at), "--", "fit", *args, "--trainer.default_root_dir", str(root), *extra]  # fmt: skip
    result = run_command(command, timeout=240)  # forked from the lit zygote (conftest.run_command), env lit_env()
    expected = 0 if kill_at is None else -9 if signal == "kill" else 143
    assert result.returncode == expected, f"{command} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def final_state(root: Path) -> dict:
    (run,) = [folder for folder in root.iterdir() if folder.is_dir()]
    return torch.load(run / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def tensors(value) -> list[torch.Tensor]:
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, dict):
        return [tensor for key in sorted(value, key=str) for tensor in tensors(value[key])]
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in tensors(item)]
    return [torch.tensor(float(value))] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def assert_bit_identical(reference: dict, resumed: dict) -> None:
    assert resumed["global_step"] == reference["global_step"]
    differ = [
        key for key, value in reference["state_dict"].items() if not torch.equal(value, resumed["state_dict"][key])
    ]
    assert differ == [], f"weights differ after the resume: {differ[:5]}"
    pairs = zip(tensors(reference["optimizer_states"]), tensors(resumed["optimizer_states"]), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs), "optimizer state differs after the resume"
    assert reference["lr_schedulers"] == resumed["lr_schedulers"]


def column(root: Path, name: str) -> dict[int, float]:
    """``name`` by step from metrics.csv (rows logged again after the resume replace the earlier ones)."""
    (run,) = [folder for folder in root.iterdir() if folder.is_dir()]
    with (run / "version_0" / "metrics.csv").open() as file:
        return {int(row["step"]): float(row[name]) for row in csv.DictReader(file) if row.get(name)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference runs, once per (config, workers)."""
    made = {}

    def run(name: str, args: list[str], workers: int) -> Path:
        if (name, workers) not in made:
            root = tmp_path_factory.mktemp(f"{name}_{workers}")
            lit_run(root, args, "--data.num_workers", str(workers))
            made[name, workers] = root
        return made[name, workers]

    return run


@pytest.mark.parametrize(
    ("name", "args", "workers", "kill_at"),
    [("quickstart", QUICKSTART, 0, 7),  # mid-epoch 1, inside the warmup (last.ckpt of step 6)
     ("quickstart", QUICKSTART, 2, 10),  # at the end of epoch 1 (last.ckpt of step 10, after validation)
     ("simclr", SIMCLR, 2, 7)],  # mid-epoch 1, per-sample augmentation in 2 workers (last.ckpt of step 6)
    ids=["mid-epoch in warmup, 0 workers", "epoch boundary, 2 workers", "augmentation mid-epoch, 2 workers"],
)  # fmt: skip
def test_a_killed_run_resumed_from_last_ends_bit_identical(tmp_path, uninterrupted, name, args, workers, kill_at):
    reference = uninterrupted(name, args, workers)
    lit_run(tmp_path, args, "--data.num_workers", str(workers), kill_at=kill_at)
    lit_run(tmp_path, args, "--data.num_workers", str(workers), "--ckpt_path", "last")
    assert_bit_identical(final_state(reference), final_state(tmp_path))
    assert column(tmp_path, "lr-AdamW") == column(reference, "lr-AdamW")  # the whole trace, warmup included
    monitor = "val/loss" if name == "quickstart" else "val/knn_acc"
    assert column(tmp_path, monitor) == column(reference, monitor)  # every validation, bit for bit


def test_the_same_seed_twice_is_bit_identical_and_another_seed_differs(tmp_path, uninterrupted):
    reference = final_state(uninterrupted("quickstart", QUICKSTART, 0))
    lit_run(tmp_path / "again", QUICKSTART, "--data.num_workers", "0")
    assert_bit_identical(reference, final_state(tmp_path / "again"))
    lit_run(tmp_path / "other", QUICKSTART, "--data.num_workers", "0", "--seed_everything", "7")
    other = final_state(tmp_path / "other")["state_dict"]
    assert not any(
        torch.equal(value, other[key]) for key, value in reference["state_dict"].items() if value.numel() > 1
    )


def test_sigterm_stops_after_the_running_batch_with_a_checkpoint_and_resumes_exactly(tmp_path, uninterrupted):
    reference = uninterrupted("quickstart", QUICKSTART, 0)
    stopped = lit_run(tmp_path, QUICKSTART, "--data.num_workers", "0", "--checkpoint.every_n_train_steps", "0",
                      kill_at=7, signal="sigterm")  # fmt: skip
    assert "lit: stopped by SIGTERM; continue with --ckpt_path last" in stopped.stderr
    assert final_state(tmp_path)["global_step"] == 7  # the batch that was running when the signal came, no more
    lit_run(tmp_path, QUICKSTART, "--data.num_workers", "0", "--checkpoint.every_n_train_steps", "0",
            "--ckpt_path", "last")  # fmt: skip
    assert_bit_identical(final_state(reference), final_state(tmp_path))
