"""RELIABILITY row 4's last item: a run stopped by SIGTERM leaves no data-loader worker behind."""

import sys

from conftest import CONFIGS, ROOT
from process_group import run_in_own_group


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
