"""RELIABILITY row 24: under DDP (2 CPU processes, gloo) a failure in one process ends every process, promptly, with
the real cause in the output and no process left behind; and no collective call hides inside a rank-0-only branch
(it would wait forever for the other processes). Uneven shards: tests/test_ddp_parity.py runs odd-sized splits."""

import ast
import re
import signal
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS, ROOT
from process_group import run_in_own_group

FAILURES = {  # fault options -> (exit status of the launching process, what the output must show)
    "raise-at-step --rank 1": (1, r"\[rank1\]: .*InjectedFailure: injected failure on rank 1 at step 2"),
    # both processes save last.ckpt at the step they agree on (callbacks.preemption) and stop as SIGTERM asks
    "sigterm-at-step --rank 1": (128 + signal.SIGTERM, r"lit: SIGTERM: saved \S+last.ckpt at step \d+"),
    # rank 1 learns of it from gloo, whose connection to rank 0 is gone
    "kill-at-step --rank 0": (-signal.SIGKILL, r"\[rank1\]: RuntimeError: \S*gloo\S* .*Check the logs of the remote"),
}


@pytest.mark.parametrize("fault", list(FAILURES))
def test_a_failure_in_one_process_ends_all_of_them_within_90_seconds(tmp_path, fault):
    ddp = CONFIGS / "trainer" / "ddp_cpu.yaml"
    command = [sys.executable, str(ROOT / "tests" / "fault_runner.py"), "--fault", *fault.split(), "--at", "2", "--",
               "fit", "--config", str(CONFIGS / "quickstart.yaml"), "--config", str(ddp),
               "--data.batch_size", "32", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6",
               "--trainer.limit_val_batches", "0", "--test_after_fit", "false", "--trainer.default_root_dir",
               str(tmp_path)]  # fmt: skip
    # A hang ends the test at 90 s (TimeoutExpired); the process DDP started is waited for too.
    result, leftovers = run_in_own_group(command, timeout=90)
    status, cause = FAILURES[fault]
    assert result.returncode == status, result.stdout[-3000:]
    assert re.search(cause, result.stdout), result.stdout[-3000:]
    assert not leftovers, "processes of the run were still alive 90 s after it started"


COLLECTIVES = {"all_gather", "all_reduce", "reduce", "barrier", "broadcast", "all_gather_object", "gather_all_tensors"}


def collectives_in_rank_branches(source: str) -> list[int]:
    """Lines of collective calls (and ``self.log(..., sync_dist=True)``) inside an ``if`` on the process's rank."""
    lines = []
    for branch in ast.walk(ast.parse(source)):
        if not isinstance(branch, ast.If) or not any(
            isinstance(node, (ast.Name, ast.Attribute)) and getattr(node, "attr", getattr(node, "id", "")) in
            ("global_rank", "is_global_zero", "local_rank", "rank")
            for node in ast.walk(branch.test)
        ):  # fmt: skip
            continue
        for node in (inner for statement in branch.body + branch.orelse for inner in ast.walk(statement)):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            synced = node.func.attr in ("log", "log_dict") and any(
                keyword.arg == "sync_dist" and getattr(keyword.value, "value", False) for keyword in node.keywords
            )
            if node.func.attr in COLLECTIVES or synced:
                lines.append(node.lineno)
    return lines


def test_no_collective_call_sits_in_a_branch_that_only_some_processes_take():
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "src" / "lit_mlcourse").rglob("*.py"))
        if (lines := collectives_in_rank_branches(path.read_text()))
    }
    assert offenders == {}
    planted = "if self.global_rank == 0:\n    self.log('val/x', 1.0, sync_dist=True)\nelse:\n    dist.barrier()\n"
    assert collectives_in_rank_branches(planted) == [2, 4]


def test_the_check_sees_through_nested_statements():
    planted = "if trainer.is_global_zero:\n    for x in y:\n        strategy.reduce(x)\n"
    assert collectives_in_rank_branches(planted) == [3]
    assert collectives_in_rank_branches("if epoch == 0:\n    strategy.reduce(x)\n") == []
    assert Path(__file__).is_file()
