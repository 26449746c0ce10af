"""RELIABILITY row 14: a run whose logger names a fixed version, killed and continued with ``--ckpt_path last``,
resumes in its own folder: the same config is accepted as it is (Lightning's SaveConfigCallback would abort on the
existing config.yaml), a changed one is saved beside it with the changes named."""

import csv
import subprocess
import sys

import pytest
import torch
from conftest import CONFIGS, ROOT, lit_env, lit_in_process

FIXED_VERSION = """trainer:
  logger:
    - class_path: lightning.pytorch.loggers.CSVLogger
      init_args: {save_dir: %s, name: quickstart, version: fixed}
"""


def test_a_killed_run_with_a_fixed_version_continues_in_its_folder(tmp_path):
    layer = tmp_path / "fixed.yaml"
    layer.write_text(FIXED_VERSION % tmp_path)
    args = ["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--config", str(layer), "--trainer.max_epochs", "3",
            "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
            "--trainer.default_root_dir", str(tmp_path)]  # fmt: skip
    runner = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", "kill-at-step", "--at", "4", "--"]
    killed = subprocess.run([*runner, *args], env=lit_env(), capture_output=True, text=True, timeout=180)
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "quickstart" / "fixed"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3

    lit_in_process(*args, "--ckpt_path", "last")
    assert sorted(path.name for path in (tmp_path / "quickstart").iterdir()) == ["fixed"]
    assert not (run / "config-1.yaml").exists()  # the same config: only the checkpoint it starts from differs
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 9
    with open(run / "metrics.csv") as rows:
        epochs = {row["epoch"] for row in csv.DictReader(rows) if row.get("val/loss")}
    assert epochs == {"0", "1", "2"}  # the killed run's first epoch kept, the rest added

    with pytest.warns(UserWarning, match=r"differs from its config.yaml; saved as config-1.yaml\. Changed: "
                                         r"trainer.max_epochs: 3 -> 4"):  # fmt: skip
        lit_in_process(*args, "--trainer.max_epochs", "4", "--ckpt_path", "last")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
    assert "max_epochs: 4" in (run / "config-1.yaml").read_text()
    assert "max_epochs: 3" in (run / "config.yaml").read_text()
