"""A fork server ("zygote") for the tests' `lit` runs: one interpreter imports `lit` (lit_mlcourse.cli and with it
torch, lightning, torchvision, torchmetrics, jsonargparse) once per pytest session, and each run is a process forked
from it, instead of a fresh interpreter that spends ~6-7 s of CPU on those imports.

    python tests/lit_zygote.py --socket PATH --ready-fd FD     (started by ``Zygote``, the client, on first use)

Processes. The zygote Z listens on a Unix socket. For each connection it forks a waiter W, which reads the request
(the program, its arguments, environment and working folder; the write ends of the stdout and stderr pipes come as
file descriptors) and forks the worker G, sends G's pid to the client, waits for G and sends its exit status (minus
the signal number when a signal killed it, as ``subprocess`` reports it); a ``kill`` from the client, or the client
hanging up (pytest killed), makes W SIGKILL G's process group. Z reaps the waiters and exits when its standard input
(a pipe from pytest, its lifeline) reaches end of file: at the end of the session, or when pytest dies.

What G does, and why it is the process a fresh `lit` (or ``python script.py``, or ``python -m module``) would be,
for everything the tests assert (exit status, standard output and error, the files a run writes):
- the program runs as the interpreter runs it: ``runpy.run_path`` of the script (the ``lit`` console script itself,
  whose ``sys.exit(main())`` is then the exit, or tests/fault_runner.py) with ``sys.argv`` as the interpreter sets it
  (``[<venv>/bin/lit, *args]``, so that Lightning's DDP launcher, which re-executes ``sys.executable`` with
  ``sys.argv``, starts real `lit` processes for the other ranks) and ``sys.path[0]`` the script's folder; or
  ``runpy.run_module(module, run_name="__main__", alter_sys=True)`` for ``-m``, ``sys.path[0]`` the working folder.
  SystemExit and any exception leave through the top level of this file, so the interpreter's own exit handling
  applies: the traceback of an uncaught exception on stderr and status 1, ``sys.exit`` codes, atexit handlers (wandb
  and logging rely on them), the flush of stdout and stderr;
- its standard output and error are pipes to the client, which reads them to end of file like
  ``subprocess.run(capture_output=True)``: output of processes G started (DDP's other ranks, loader workers) is
  waited for in the same way (pipes, not files: Lightning's DDP launcher does not wait for the other ranks, which
  may still write, and finish their files, after rank 0 has exited). ``sys.stdout`` and ``sys.stderr`` stay the
  objects the interpreter made (the zygote's are pipes too, made under the same PYTHONUNBUFFERED and locale), because
  loggers created at import hold them; only the file descriptors under them change. Standard input is /dev/null;
- the environment is replaced by the request's (``os.environ``, and with it the C environment), the working folder
  changed, signal dispositions and the signal mask set back to those the zygote's interpreter had at its start (the
  same as a fresh interpreter started by pytest: SIGINT raises KeyboardInterrupt, SIGPIPE and SIGXFSZ ignored, every
  other signal at its default, SIGCHLD included), and ``torch.set_num_threads(OMP_NUM_THREADS)`` applied as a fresh
  interpreter's torch applies the variable;
- Python's ``random`` reseeds itself in a forked child; tempfile's name sequence too. Nothing else is reseeded.

Import-time state is the trap: whatever the imports read from the environment was read under the zygote's
environment, not the request's. The zygote records every variable its imports read or wrote through ``os.environ``
(Lightning's and torchmetrics' rank from RANK/LOCAL_RANK/SLURM_PROCID, POSSIBLE_USER_WARNINGS, TMPDIR for tempfile's
cached folder and torch's inductor cache, HOME and MPL* for matplotlib's configuration, torch's TORCH* settings, ...)
and adds the variables read from C at start-up (PYTHON*, LC_*/LANG, LD_*, OMP_*/GOMP_*/OPENBLAS_*/MKL_*: libgomp and
OpenBLAS size their thread pools when loaded, KMP_* where an Intel or LLVM OpenMP runtime is loaded, TORCH*/PYTORCH*,
CUDA_*) and the prefixes of variables the imports read by iterating the environment (TQDM_, FSSPEC_). A request whose
value of any of these differs from the zygote's own is not forked: the client runs it as a fresh interpreter
(``subprocess.run``), the same command. So is a request after a source file of lit_mlcourse changed (an edit during
the session), and the client then starts another zygote for the next runs: a forked run never runs older code than a
fresh interpreter would. pytest's terminal summary lists these runs and why (conftest.py); LIT_MLCOURSE_TEST_ZYGOTE=0
runs every command as a fresh interpreter. What the zygote was checked against (see tests/test_lit_zygote.py):
- OMP_NUM_THREADS / torch threads: compared (OpenBLAS sizes its pool at load), and torch's count set in G as well;
- WANDB_*: lit imports wandb only when a run logs to wandb, in G, after the environment is set; the zygote does not
  import wandb (its start-up reports the heavy modules it holds, and a test checks that wandb is not among them);
- LIT_MLCOURSE_*: the package reads them when it runs (downloads, import policy, run folders), never at import;
- PL_* (PL_GLOBAL_SEED, PL_SEED_WORKERS, ...): read when Lightning runs; none is read at import;
- MASTER_PORT / MASTER_ADDR: read when DDP starts; Lightning's free-port search keeps no state at import.
Variables the imports set themselves (PYTORCH_NVML_BASED_CUDA_CHECK, TORCHINDUCTOR_CACHE_DIR) are set in G as the
imports set them in the zygote.

What is not the same as a fresh interpreter (why the tests whose subject is the process itself keep one: start-up
and import cost, which modules `lit` imports, the entry-point scripts and ``python -m``, torchrun and SLURM, the
quick start run "as a user runs it"):
- nothing is imported again: import-time output (warnings, messages) is not repeated, and ``sys.modules`` holds what
  the zygote imported (lit's start-up imports, plus the standard modules this file uses);
- the string hash seed (PYTHONHASHSEED) and numpy's global random state are the zygote's, the same in every G, where
  fresh interpreters each draw their own (Lightning seeds numpy, torch and random when a run is seeded);
- G is a session and process-group leader (a timeout kills the whole group), and its parent is W, not pytest;
- a traceback starts with this file's and runpy's frames; ``sys.orig_argv`` is the zygote's;
- objects the zygote created at import exist once, copied into each G (loggers, registries): the same objects a fresh
  `lit` would create at import, built under the zygote's environment, which matches the request's where it matters.
The zygote itself runs no torch computation: no OpenMP pool exists when it forks (OpenBLAS's pools, one thread under
OMP_NUM_THREADS=1, are shut down around fork by OpenBLAS itself), and it runs no Python thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

# What a fresh interpreter started by pytest has, recorded before anything else runs: G restores it.
START_SIGNALS = {signum: signal.getsignal(signum) for signum in signal.valid_signals()}
START_MASK = signal.pthread_sigmask(signal.SIG_BLOCK, [])
START_ENV = dict(os.environ)

# Variables read from C at start-up (the interpreter, glibc, libgomp, OpenBLAS, MKL, torch's C++): not seen by
# recording os.environ, compared by prefix.
C_PREFIXES = ("PYTHON", "LC_", "LANG", "LD_", "MALLOC_", "GLIBC_", "TZ", "OMP_", "GOMP_", "MKL_", "OPENBLAS_",
              "GOTO_", "BLIS_", "ONEDNN_", "DNNL_", "TORCH", "PYTORCH", "C10_", "CUDA_", "NVIDIA_",
              "NVPL_")  # fmt: skip
# KMP_* are read by Intel's and LLVM's OpenMP runtimes only (torch here runs on GNU libgomp): compared where one is
# loaded. (scikit-learn's import sets KMP_DUPLICATE_LIB_OK, and `lit` runs in the test process import it.)
INTEL_OPENMP = ("libiomp", "libomp.so", "libomp-")
# Modules that read the environment at import by iterating it, and the prefix of the variables they use (their reads
# count as that prefix).
KNOWN_ITERATIONS = {os.path.join("tqdm", "utils.py"): "TQDM_", os.path.join("fsspec", "config.py"): "FSSPEC_"}
HEAVY = ("torch", "lightning", "torchvision", "torchmetrics", "jsonargparse", "wandb", "matplotlib", "sklearn",
         "pandas", "scipy", "tensorboard")  # fmt: skip
MESSAGE_LIMIT = 1 << 24


# --- the zygote ------------------------------------------------------------------------------------------------------


class ImportTimeEnvironment:
    """The variables `lit`'s imports read or wrote (recorded while importing), and the check of a request's
    environment against the zygote's."""

    def __init__(self) -> None:
        self.read: set[str] = set()
        self.written: set[str] = set()
        self.prefixes: set[str] = set(C_PREFIXES)
        self.unknown_iterations: list[str] = []
        self.after: dict[str, str] = {}
        self.sources: dict[str, int] = {}

    def record(self, run) -> None:
        """``run()`` with every access to os.environ recorded."""
        environ_class = type(os.environ)
        names = ("__getitem__", "__setitem__", "__delitem__", "__iter__", "copy")
        originals = {name: environ_class.__dict__[name] for name in names}
        getitem, setitem, delitem, iterate, copy = originals.values()

        def record_get(environ, key):
            prefix = KNOWN_ITERATIONS.get(reader())
            if prefix is None:
                self.read.add(key)
            else:  # reading the environment it iterates (os.environ.items(), dict(os.environ))
                self.prefixes.add(prefix)
            return getitem(environ, key)

        def record_set(environ, key, value):
            self.written.add(key)
            setitem(environ, key, value)

        def record_del(environ, key):
            self.written.add(key)
            delitem(environ, key)

        def record_iter(environ):
            self.iterated()
            return iterate(environ)

        def record_copy(environ):
            self.iterated()
            return copy(environ)

        patches = dict(zip(names, (record_get, record_set, record_del, record_iter, record_copy), strict=True))
        for name, function in patches.items():
            setattr(environ_class, name, function)
        try:
            run()
        finally:
            for name, original in originals.items():
                setattr(environ_class, name, original)
        self.after = {key: os.environ[key] for key in self.written if key in os.environ}
        with open("/proc/self/maps") as maps:
            if any(name in line for line in maps for name in INTEL_OPENMP):
                self.prefixes.add("KMP_")
        self.sources = package_sources()

    def iterated(self) -> None:
        """Someone iterates the environment: a known module's prefix, else every variable counts."""
        where = reader()
        if where in KNOWN_ITERATIONS:
            self.prefixes.add(KNOWN_ITERATIONS[where])
        else:
            self.unknown_iterations.append(where)

    def stale(self) -> str | None:
        """Which source file of lit_mlcourse changed since the zygote imported it, if one did: a fresh interpreter
        would run the new code (the client then starts another zygote)."""
        changed = sorted(path for path, stamp in package_sources(self.sources).items() if stamp != self.sources[path])
        return f"{changed[0]} changed since the zygote imported it" if changed else None

    def difference(self, env: dict[str, str]) -> str | None:
        """Why a process with ``env`` would not be what a fresh interpreter gives (None: it would): a variable read
        at import whose value differs from the zygote's."""
        if self.unknown_iterations:
            keys = set(env) | set(START_ENV)
        else:
            keys = self.read | self.written
            keys |= {key for key in (set(env) | set(START_ENV)) if key.startswith(tuple(self.prefixes))}
        for key in sorted(keys):
            if env.get(key) != START_ENV.get(key):
                return f"{key}={env.get(key)!r} where the zygote's imports saw {START_ENV.get(key)!r}"
        return None

    def apply(self) -> None:
        """Set what the imports set in the zygote's environment (PYTORCH_NVML_BASED_CUDA_CHECK, ...)."""
        for key in self.written:
            if key in self.after:
                os.environ[key] = self.after[key]
            else:
                os.environ.pop(key, None)


def package_sources(paths=None) -> dict[str, int | None]:
    """The modification times of ``paths``, by default the source files of lit_mlcourse's imported modules."""
    if paths is None:
        paths = [getattr(module, "__file__", None) for name, module in list(sys.modules.items())
                 if name == "lit_mlcourse" or name.startswith("lit_mlcourse.")]  # fmt: skip
    stamps = {}
    for path in filter(None, paths):
        try:
            stamps[path] = os.stat(path).st_mtime_ns
        except OSError:
            stamps[path] = None
    return stamps


def reader() -> str:
    """The module reading os.environ: the first caller outside os, collections.abc and this file, as the path below
    site-packages for a module of KNOWN_ITERATIONS."""
    frame = sys._getframe(1)
    inside = ("_collections_abc.py", "os.py", "<frozen os>", "<frozen _collections_abc>", __file__)
    while frame is not None and frame.f_code.co_filename.endswith(inside):
        frame = frame.f_back
    where = frame.f_code.co_filename if frame is not None else "?"
    return next((suffix for suffix in KNOWN_ITERATIONS if where.endswith(os.sep + suffix)), where)


def import_lit() -> None:
    """What the `lit` console script imports (``from lit_mlcourse.cli import main``), which brings the heavy
    libraries; the rest of them if it did not. No torch computation."""
    import lit_mlcourse.cli  # noqa: F401

    for name in ("torch", "lightning", "torchvision", "torchmetrics", "jsonargparse"):
        __import__(name)


def main(argv: list[str]) -> Worker | None:
    import argparse
    import socket

    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    options = parser.parse_args(argv)
    environment = ImportTimeEnvironment()
    environment.record(import_lit)
    import threading

    if threading.active_count() != 1:
        raise RuntimeError(f"the imports started Python threads: {threading.enumerate()}; forking would lose them")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(options.socket)
    listener.listen(64)
    ready = {
        "pid": os.getpid(),
        "modules": [name for name in HEAVY if name in sys.modules],
        "threads": len(os.listdir("/proc/self/task")),
        "unknown_iterations": environment.unknown_iterations,
        "watched": sorted(environment.read | environment.written),
        "written": {key: environment.after.get(key) for key in sorted(environment.written)},
        "prefixes": sorted(environment.prefixes),
    }
    os.write(options.ready_fd, json.dumps(ready).encode())
    os.close(options.ready_fd)
    worker = serve(listener, environment)
    if worker is not None:  # in a forked worker: the zygote's socket stays the zygote's
        return worker
    listener.close()
    os.unlink(options.socket)
    with contextlib.suppress(OSError):  # the client's folder for the socket, should the client be gone
        os.rmdir(os.path.dirname(options.socket))
    return None


def serve(listener, environment: ImportTimeEnvironment) -> Worker | None:
    """Fork a waiter per connection until standard input (pytest's lifeline) closes. Returns only in a worker (its
    job) or in the zygote at the end (None): no try/finally here, as the worker leaves through it too."""
    import select

    while True:
        reap()
        readable, _, _ = select.select([listener, 0], [], [], 5.0)
        if 0 in readable and not os.read(0, 4096):
            return None
        if listener in readable:
            connection, _ = listener.accept()
            flush_stdio()
            if os.fork() == 0:
                return wait_for_worker(connection, listener, environment)
            connection.close()


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


def stdin_from_null() -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    if null != 0:
        os.dup2(null, 0)
        os.close(null)


def receive(connection) -> tuple[dict, list[int]]:
    import socket

    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 2)
    if len(data) < 4:
        raise ConnectionError("a request without its length")
    size = int.from_bytes(data[:4], "big")
    if size > MESSAGE_LIMIT:
        raise ConnectionError(f"a request of {size} bytes")
    payload = bytearray(data[4:])
    while len(payload) < size:
        chunk = connection.recv(size - len(payload))
        if not chunk:
            raise ConnectionError("the request ended early")
        payload += chunk
    return json.loads(payload), fds


def send(connection, message: dict) -> None:
    with contextlib.suppress(OSError):  # the client is gone (killed, or it timed out): nobody to tell
        connection.sendall(json.dumps(message).encode() + b"\n")


def wait_for_worker(connection, listener, environment: ImportTimeEnvironment) -> Worker:
    """In the waiter W: fork the worker G, tell the client its pid, then its exit status. Returns only in G."""
    import select

    pid = None
    try:  # W never returns into the zygote's code: it ends with os._exit, whatever happens
        listener.close()
        stdin_from_null()  # not the lifeline; and fd 0 is taken, so the received descriptors are not 0
        request, fds = receive(connection)
        stale = environment.stale()
        reason = stale or environment.difference(request["env"])
        if reason is not None:
            send(connection, {"fresh": reason, "stale": stale is not None})
            os._exit(0)
        flush_stdio()
        pid = os.fork()
    except BaseException:
        failed(connection, pid)
    if pid == 0:
        connection.close()
        return Worker(request, stdout=fds[0], stderr=fds[1], environment=environment)
    try:
        for fd in fds:
            os.close(fd)
        send(connection, {"pid": pid})
        waiting = [connection, os.pidfd_open(pid)]
        while True:
            readable, _, _ = select.select(waiting, [], [])
            if connection in readable:
                try:
                    data = connection.recv(64)
                except OSError:
                    data = b""
                if not data:  # the client hung up (pytest killed): nobody will wait for this process
                    waiting.remove(connection)
                if not data or b"kill" in data:
                    kill_group(pid)
            if waiting[-1] in readable:
                _, status = os.waitpid(pid, 0)
                send(connection, {"status": os.waitstatus_to_exitcode(status)})
                os._exit(0)
    except BaseException:
        failed(connection, pid)


def failed(connection, pid: int | None) -> None:
    """The waiter's own failure: its traceback in the zygote's output, the worker killed, the client told."""
    import traceback

    with contextlib.suppress(BaseException):
        traceback.print_exc()
        if pid:
            kill_group(pid)
        send(connection, {"error": "the lit zygote's waiter failed (its traceback is in the zygote's output)"})
    os._exit(1)


def kill_group(pid: int) -> None:
    """SIGKILL to G's process group, and to G itself in case it has not made its group yet (G is not reaped until
    this waiter waits for it, so its pid is not reused meanwhile)."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


class Worker:
    """The request, run in the forked process G as the interpreter would run it (``run``)."""

    def __init__(self, request: dict, stdout: int, stderr: int, environment: ImportTimeEnvironment) -> None:
        self.request, self.stdout, self.stderr, self.environment = request, stdout, stderr, environment

    def become_fresh(self) -> None:
        os.setsid()
        for signum, handler in START_SIGNALS.items():
            if handler is not None and signum not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, START_MASK)
        stdin_from_null()
        flush_stdio()
        os.dup2(self.stdout, 1)
        os.dup2(self.stderr, 2)
        for fd in {self.stdout, self.stderr} - {0, 1, 2}:
            os.close(fd)
        os.chdir(self.request["cwd"])
        os.environ.clear()
        os.environ.update(self.request["env"])
        self.environment.apply()
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            import torch

            torch.set_num_threads(int(threads))

    def run(self) -> None:
        import runpy

        self.become_fresh()
        request = self.request
        if sys.path[0] == os.path.dirname(os.path.abspath(__file__)):  # this file's folder, not the program's
            del sys.path[0]
        if "module" in request:
            sys.argv = ["-m", *request["args"]]  # run_module sets sys.argv[0] to the module's file
            sys.path.insert(0, os.getcwd())
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [request["path"], *request["args"]]
            sys.path.insert(0, os.path.dirname(os.path.realpath(request["path"])))
            runpy.run_path(request["path"], run_name="__main__")


# --- the client (in pytest) ------------------------------------------------------------------------------------------


class Zygote:
    """The client: starts the zygote on first use (``environment()`` gives the environment it imports under, the one
    the runs are expected to have), runs commands in processes forked from it (``run``), and ends it (``close``).
    Thread-safe: one connection per run."""

    def __init__(self, environment) -> None:
        import threading

        self._environment = environment
        self._lock = threading.Lock()
        self._process = None
        self._retired: list = []  # zygotes whose code is out of date, ending once their runs have
        self._socket: str | None = None
        self._output: list[bytes] = []
        self.info: dict = {}
        self.fresh: list[tuple[list[str], str]] = []  # the commands run as fresh interpreters, and why

    # which commands it runs

    def program(self, command: list[str]) -> dict | None:
        """The request for ``command`` (``python script``, ``python -m module``, or a Python script of this
        interpreter such as the ``lit`` console script), None for anything else."""
        from pathlib import Path

        if not command:
            return None
        python = Path(sys.executable)
        if Path(command[0]) == python and len(command) >= 3 and command[1] == "-m":
            return {"module": command[2], "args": list(command[3:])}
        if Path(command[0]) == python and len(command) >= 2 and not command[1].startswith("-"):
            return {"path": str(Path(command[1]).absolute()), "args": list(command[2:])}
        script = Path(command[0])
        if script.is_absolute() and script.is_file():
            with script.open("rb") as file:
                first = file.readline().decode(errors="replace").strip()
            interpreter = first[2:].strip() if first.startswith("#!") else ""
            if interpreter and " " not in interpreter and Path(interpreter).parent == python.parent:
                return {"path": str(script), "args": list(command[1:])}
        return None

    # start and end

    def _start(self) -> None:
        import subprocess
        import tempfile
        import threading

        folder = tempfile.mkdtemp(prefix="lit-zygote-")
        path = os.path.join(folder, "socket")
        read_end, write_end = os.pipe()
        process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--socket", path, "--ready-fd",
                                    str(write_end)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=self._environment(), pass_fds=[write_end])  # fmt: skip
        os.close(write_end)

        def drain() -> None:  # the zygote's own output, kept for an error message
            for line in process.stdout:
                self._output.append(line)
                del self._output[:-200]

        threading.Thread(target=drain, name="lit-zygote-output", daemon=True).start()
        with os.fdopen(read_end, "rb") as ready:
            message = ready.read()
        if not message:
            process.wait(timeout=60)
            raise RuntimeError(f"the lit zygote did not start (exit status {process.returncode}):\n{self.output()}")
        self.info = json.loads(message)
        self._process, self._socket = process, path

    def output(self) -> str:
        return b"".join(self._output).decode(errors="replace")

    def close(self) -> None:
        """End the zygote: end of file on its lifeline; SIGKILL if it does not go within 30 s."""
        import shutil
        import subprocess

        with self._lock:
            process, self._process = self._process, None
            if process is not None:
                process.stdin.close()
            for zygote in [process, *self._retired]:
                if zygote is None:
                    continue
                try:
                    zygote.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    zygote.kill()
                    zygote.wait()
                shutil.rmtree(os.path.dirname(zygote.args[3]), ignore_errors=True)
            self._retired.clear()

    # a run

    def run(self, command: list[str], *, cwd=None, env: dict[str, str], timeout: float | None):
        """``subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)``, the process
        forked from the zygote (or, where the environment differs from the zygote's in a variable its imports read, a
        fresh interpreter: ``subprocess.run`` itself). ``command`` must be one ``program`` accepts."""
        import socket
        import subprocess

        request = self.program(command)
        if request is None:
            raise ValueError(f"the zygote runs Python programs of {sys.executable}, not {command}")
        if cwd is not None and not os.path.isdir(cwd):  # subprocess.run's own error
            return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        request.update(cwd=os.path.abspath(cwd if cwd is not None else os.getcwd()), env=dict(env))
        payload = json.dumps(request).encode()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        for attempt in (1, 2):  # again if another thread retired the zygote meanwhile
            with self._lock:
                if self._process is None:
                    self._start()
                process, path = self._process, self._socket
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.connect(path)
                socket.send_fds(connection, [len(payload).to_bytes(4, "big") + payload], [out_write, err_write])
                break
            except OSError as error:
                connection.close()
                if attempt == 1 and process is not self._process:
                    continue
                for fd in (out_read, out_write, err_read, err_write):
                    os.close(fd)
                raise RuntimeError(f"the lit zygote does not answer ({error}); its output:\n{self.output()}") from error
        os.close(out_write)
        os.close(err_write)
        try:
            outcome = communicate(connection, out_read, err_read, timeout)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; the zygote's output:\n{self.output()}") from error
        finally:
            connection.close()
            os.close(out_read)
            os.close(err_read)
        if "fresh" in outcome:  # a variable read at import differs: a fresh interpreter, as subprocess.run gives
            self.fresh.append((command, outcome["fresh"]))
            if outcome["stale"]:  # lit_mlcourse's code changed: the next run starts a zygote that imports it anew
                with self._lock:
                    if self._process is process:
                        self._process = None
                        self._retired.append(process)
                        process.stdin.close()  # it ends; its waiters and workers go on to their end
            return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        stdout, stderr = outcome["stdout"], outcome["stderr"]
        if outcome.get("timed_out"):
            raise subprocess.TimeoutExpired(command, timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess(command, outcome["status"], text(stdout), text(stderr))


def text(data: bytes) -> str:
    """Bytes as ``subprocess.run(text=True)`` decodes them: the locale's encoding, universal newlines."""
    import locale

    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def communicate(connection, out_read: int, err_read: int, timeout: float | None) -> dict:
    """Read stdout and stderr to end of file and W's messages (G's pid, its status), as ``Popen.communicate`` reads a
    child's pipes. At ``timeout``: ask W to kill G's process group, wait for the status (not the pipes: what the
    group left behind may hold them), and say so (``timed_out``)."""
    import selectors
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: dict[int, list[bytes]] = {out_read: [], err_read: []}
    messages, buffer, timed_out = {}, b"", False
    with selectors.DefaultSelector() as selector:
        for fd in (out_read, err_read, connection):
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            if "fresh" in messages:
                return messages
            if "error" in messages:
                raise RuntimeError(messages["error"])
            if "status" in messages and (timed_out or not ({out_read, err_read} & set(selector.get_map()))):
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0 and not timed_out:
                timed_out = True
                with contextlib.suppress(OSError):  # the waiter has gone: the worker ended, its children hold the pipes
                    connection.sendall(b"kill\n")
                for fd in (out_read, err_read):
                    if fd in selector.get_map():
                        selector.unregister(fd)
                continue
            for key, _ in selector.select(None if timed_out or left is None else left):
                if key.fileobj is connection:
                    data = connection.recv(1 << 16)
                    if not data:
                        selector.unregister(connection)
                        if not {"status", "fresh", "error"} & set(messages):
                            raise RuntimeError("the lit zygote's waiter ended without the exit status")
                    buffer += data
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        messages.update(json.loads(line))
                else:
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        selector.unregister(key.fd)
    if "fresh" in messages:
        return messages
    if "status" not in messages:
        raise RuntimeError(messages.get("error", "the lit zygote's waiter ended without the exit status"))
    return {**messages, "stdout": b"".join(chunks[out_read]), "stderr": b"".join(chunks[err_read]),
            "timed_out": timed_out}  # fmt: skip


if __name__ == "__main__":
    worker = main(sys.argv[1:])
    if worker is not None:  # in G: the program's SystemExit, or its exception, ends this interpreter
        worker.run()
