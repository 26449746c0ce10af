"""Running a command in its own process group, to see whether any process it started outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import lit_env


def run_in_own_group(command: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, bool]:
    """Run ``command`` (output and errors together, as text) in a new process group, wait for the command and then
    for every process of its group (worker and DDP processes included), all within ``timeout`` seconds. Returns the
    result and whether processes of the group were still alive at the end (they are killed then). A command still
    running at ``timeout`` raises subprocess.TimeoutExpired, its group killed."""
    deadline = time.monotonic() + timeout
    process = subprocess.Popen(command, env=lit_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        output, _ = process.communicate(timeout=timeout)
        while group_alive(process.pid) and time.monotonic() < deadline:  # exiting processes not reaped yet
            time.sleep(0.2)
    finally:
        leftovers = group_alive(process.pid)
        if leftovers:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, process.returncode, output, ""), leftovers


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):  # PermissionError: only a zombie left, on some systems
        return False
    return True
