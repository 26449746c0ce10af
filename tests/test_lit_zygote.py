"""The lit zygote (tests/lit_zygote.py, behind conftest.run_command and run_lit) gives what a fresh interpreter gives:
each program here runs both ways, forked from the zygote and as ``subprocess.run``, and the two results are compared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ZYGOTE, lit_env, run_command, run_lit

# What a program sees of its process: compared between the zygote's worker and a fresh interpreter.
PROBE = """
import json, os, signal, stat, sys, threading

def stream(s):
    return [s.encoding, s.errors, s.line_buffering, s.write_through, s.isatty(), s.fileno()]

null = os.stat(os.devnull)
print(json.dumps({
    "argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "name": __name__, "file": __file__,
    "spec": repr(__spec__), "env": dict(os.environ),
    "main_thread": threading.current_thread() is threading.main_thread(),
    "signals": {int(s): repr(signal.getsignal(s)) for s in signal.valid_signals()},
    "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "stdin_null": os.path.samestat(os.fstat(0), null), "stdout": stream(sys.stdout), "stderr": stream(sys.stderr),
    "stdout_fifo": stat.S_ISFIFO(os.fstat(1).st_mode), "stderr_fifo": stat.S_ISFIFO(os.fstat(2).st_mode),
    "umask": os.umask(0o22),
}))
print("to stderr", file=sys.stderr)
"""
# What only the zygote's worker has (its parent is the waiter, not pytest; it leads its own process group).
WORKER = """
import json, os, sys
torch = sys.modules.get("torch")
print(json.dumps({"ppid": os.getppid(), "group_leader": os.getpgid(0) == os.getpid(), "wandb": "wandb" in sys.modules,
                  "torch_threads": torch.get_num_threads() if torch else None}))
"""


def both(tmp_path: Path, source: str, *args: str, env: dict | None = None, timeout: float = 60):
    """``source`` as a script run forked from the zygote and as a fresh interpreter: the two CompletedProcesses."""
    script = tmp_path / "program.py"
    script.write_text(source)
    command = [sys.executable, str(script), *args]
    env = lit_env() if env is None else env
    forked = run_command(command, cwd=tmp_path, env=env, timeout=timeout)
    fresh = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert forked.args == fresh.args == command
    return forked, fresh


def test_the_zygote_holds_lit_and_no_thread_nor_wandb(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    found = json.loads(run_command([sys.executable, str(script)], timeout=60).stdout)
    threads = int(lit_env()["OMP_NUM_THREADS"])
    assert found == {"ppid": found["ppid"], "group_leader": True, "wandb": False, "torch_threads": threads}
    assert found["ppid"] != os.getpid()  # forked from the zygote, not started by pytest
    assert {"torch", "lightning", "torchvision", "torchmetrics", "jsonargparse"} <= set(ZYGOTE.info["modules"])
    assert "wandb" not in ZYGOTE.info["modules"]  # imported in the worker, by a run that logs to wandb
    if threads == 1:  # no OpenMP pool, and OpenBLAS's of one thread has no worker thread: nothing fork would lose
        assert ZYGOTE.info["threads"] == 1
    # Every read of the environment at import is known by name or prefix (else each variable would count).
    assert ZYGOTE.info["unknown_iterations"] == []
    assert {"TMPDIR", "LOCAL_RANK", "RANK", "HOME", "POSSIBLE_USER_WARNINGS"} <= set(ZYGOTE.info["watched"])


def test_a_program_sees_what_a_fresh_interpreter_sees(tmp_path):
    env = {**lit_env(), "ZYGOTE_PROBE": "é ü"}
    env.pop("LIT_MLCOURSE_OFFLINE")  # a variable of the zygote's environment that this run lacks
    (tmp_path / "cwd").mkdir()
    script = tmp_path / "program.py"
    script.write_text(PROBE)
    command = [sys.executable, str(script), "a b", "--flag"]
    forked = run_command(command, cwd=tmp_path / "cwd", env=env, timeout=60)
    fresh = subprocess.run(command, cwd=tmp_path / "cwd", env=env, capture_output=True, text=True, timeout=60)
    assert (forked.returncode, forked.stderr) == (fresh.returncode, fresh.stderr) == (0, "to stderr\n")
    seen, expected = json.loads(forked.stdout), json.loads(fresh.stdout)
    assert expected["env"] == env
    # the worker's environment is the one a fresh `lit` has after its imports (which set PYTORCH_NVML_BASED_CUDA_CHECK)
    written = ZYGOTE.info["written"]
    after_imports = {key: value for key, value in {**env, **written}.items() if value is not None}
    assert seen.pop("env") == after_imports and expected.pop("env") == env
    assert seen == expected and seen["cwd"] == str(tmp_path / "cwd")
    assert seen["argv"] == [str(script), "a b", "--flag"] and seen["path0"] == str(tmp_path)
    assert seen["signals"][str(int(signal.SIGCHLD))] == "<Handlers.SIG_DFL: 0>"


@pytest.mark.parametrize(
    ("source", "status"),
    [("import sys\nprint('out')\nprint('err', file=sys.stderr)\n", 0),
     ("import argparse\nparser = argparse.ArgumentParser()\nparser.add_argument('--n', type=int)\n"
      "parser.parse_args(['--n', 'x'])\n", 2),
     ("print('before')\nraise ValueError('boom')\n", 1),
     ("import sys\nsys.exit('a message')\n", 1),
     ("import os, signal\nprint('dying', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n", -9),
     ("import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(30)\n", -15),
     ("import os, signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
      "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(30)\n", 143),
     ("import atexit, logging\natexit.register(print, 'at exit')\nlogging.basicConfig()\n"
      "logging.getLogger().warning('logged')\n", 0)],
    ids=["success", "argparse error", "exception", "sys.exit message", "SIGKILL", "SIGTERM", "SIGTERM handler",
         "atexit and logging"],
)  # fmt: skip
def test_exit_status_and_output_as_a_subprocess(tmp_path, source, status):
    forked, fresh = both(tmp_path, source)
    assert forked.returncode == fresh.returncode == status
    assert forked.stdout == fresh.stdout
    if status == 1 and "Traceback" in fresh.stderr:  # the worker's traceback starts in the zygote's frames
        assert forked.stderr.startswith("Traceback (most recent call last):\n")
        assert forked.stderr.splitlines()[-2:] == fresh.stderr.splitlines()[-2:]
    else:
        assert forked.stderr == fresh.stderr


def test_lit_itself_as_a_fresh_lit(tmp_path):
    args = ("fit", "--trainer.max_epoch", "3", "--trainer.default_root_dir", str(tmp_path))
    forked = run_lit(*args, cwd=tmp_path, check=False)
    fresh = run_lit(*args, cwd=tmp_path, check=False, fresh_interpreter=True)
    assert forked.args == fresh.args and forked.args[0] == str(Path(sys.executable).parent / "lit")
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == 2 and "did you mean 'trainer.max_epochs'?" in forked.stderr


def test_a_timeout_kills_the_process_group(tmp_path):
    source = ("import subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\nprint(child.pid, flush=True)\n"
              "time.sleep(300)\n")  # fmt: skip
    script = tmp_path / "program.py"
    script.write_text(source)
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as timeout:
        run_command([sys.executable, str(script)], timeout=3)
    assert time.monotonic() - started < 30
    assert timeout.value.cmd == [sys.executable, str(script)] and timeout.value.timeout == 3
    child = int(timeout.value.output)  # the output so far, as bytes, like subprocess.run's
    for _ in range(100):  # the grandchild, in the worker's group, was killed with it
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"sleep {child} outlived the timeout")


def test_concurrent_runs_keep_their_own_output(tmp_path):
    script = tmp_path / "program.py"
    script.write_text(
        "import sys, time\nfor i in range(3000):\n    print(sys.argv[1], i)\n"
        "    print(sys.argv[1], -i, file=sys.stderr)\n"
        "    if i % 500 == 0:\n        time.sleep(0.05)\nsys.exit(int(sys.argv[2]))\n"
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(run_command, [sys.executable, str(script), name, code], timeout=60)
                for name, code in (("A", "3"), ("B", "4"))]  # fmt: skip
        results = [run.result() for run in runs]
    for result, name, code in zip(results, "AB", (3, 4), strict=True):
        assert result.returncode == code
        assert result.stdout == "".join(f"{name} {i}\n" for i in range(3000))
        assert result.stderr == "".join(f"{name} {-i}\n" for i in range(3000))


def test_a_variable_read_at_import_that_differs_means_a_fresh_interpreter(tmp_path):
    # tempfile caches its folder at the first question, which the zygote's imports asked under the zygote's TMPDIR
    source = "import json, os, tempfile\nprint(json.dumps([os.getppid(), tempfile.gettempdir()]))\n"
    other = tmp_path / "tmp"
    other.mkdir()
    forked, fresh = both(tmp_path, source, env={**lit_env(), "TMPDIR": str(other)})
    assert json.loads(forked.stdout) == json.loads(fresh.stdout) == [os.getpid(), str(other)]
    forked, _ = both(tmp_path, source)
    assert json.loads(forked.stdout)[0] != os.getpid()  # the same environment as the zygote's: forked


def test_a_source_file_changed_since_the_zygote_imported_it_means_a_fresh_interpreter(tmp_path):
    from lit_zygote import START_ENV, ImportTimeEnvironment, package_sources

    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    environment = ImportTimeEnvironment()
    environment.sources = package_sources([str(module)])
    assert environment.stale() is None and environment.difference(START_ENV) is None
    os.utime(module, ns=(0, 0))  # as an edit of the package's code in the middle of the session
    assert environment.stale() == f"{module} changed since the zygote imported it"
