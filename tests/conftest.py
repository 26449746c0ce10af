"""Shared fixtures: the real course data, synthetic files, and running `lit` as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from lit_zygote import Zygote

# Tests never download: code that would fetch data or weights fails as it does offline.
os.environ["LIT_MLCOURSE_OFFLINE"] = "1"


def pytest_configure(config) -> None:
    # One torch thread in the test process, as in the `lit` subprocesses (run_lit): the tests' models are tiny, and
    # beside a subprocess two threads on a 2-core machine spin against it (a one-epoch quick start took 16 s on two
    # threads, 4 s on one).
    import torch

    torch.set_num_threads(1)


ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``$LIT_MLCOURSE_TEST_DATA`` (CI sets it to ../shared/data); when set, its files must exist."""
    folder = os.environ.get("LIT_MLCOURSE_TEST_DATA")
    if not folder:
        candidate = ROOT.parent / "shared" / "data"
        if not candidate.is_dir():
            pytest.skip("LIT_MLCOURSE_TEST_DATA is not set and ../shared/data is absent")
        folder = str(candidate)
    path = Path(folder).resolve()
    for name in ("pm25/train.csv", "pm25/test.csv"):
        assert (path / name).is_file(), f"LIT_MLCOURSE_TEST_DATA={folder} lacks {name}"
    return path


@pytest.fixture(scope="session")
def pm25_dir(real_data: Path) -> Path:
    return real_data / "pm25"


@pytest.fixture(scope="session")
def hymenoptera_dir(real_data: Path) -> Path:
    folder = real_data / "hymenoptera_data"
    assert (folder / "train" / "ants").is_dir(), f"{real_data} lacks hymenoptera_data/train/ants"
    return folder


@pytest.fixture(scope="session")
def cifar_layer(tmp_path_factory) -> Path:
    """A config layer (``--config`` it after a CIFAR config) pointing at a synthetic CIFAR-10 folder of 200
    training and 40 test images, with its md5 table and a 40-image validation split."""
    import yaml
    from cifar_fixtures import write_cifar_folder

    root = tmp_path_factory.mktemp("cifar")
    checksums = write_cifar_folder(root / "data", per_batch=40)
    layer = {"data": {"init_args": {"data_dir": str(root / "data"), "checksums": checksums, "val_size": 40}}}
    path = root / "synthetic.yaml"
    path.write_text(yaml.safe_dump(layer))
    return path


def lit_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the `lit` processes: ``base`` (by default this process's) with the variables below."""
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one thread is fastest and reproducible
    env["WANDB_MODE"] = "offline"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# `lit` processes forked from one interpreter that has imported `lit` (tests/lit_zygote.py), started on first use and
# ended with the session: each run saves the ~6-7 s of CPU a fresh interpreter spends importing torch and Lightning.
# LIT_MLCOURSE_TEST_ZYGOTE=0 runs every command as a fresh interpreter instead.
ZYGOTE = Zygote(lambda: lit_env(_BEFORE_IN_PROCESS))
# os.environ before the ``lit_in_process`` running now, if one is: what the zygote starts with, rather than the
# variables that run sets meanwhile (it removes them after: Lightning's PL_GLOBAL_SEED, scikit-learn's KMP_*).
_BEFORE_IN_PROCESS: dict[str, str] | None = None


def pytest_unconfigure(config) -> None:
    ZYGOTE.close()


def run_command(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 240,
    fresh_interpreter: bool = False,
) -> subprocess.CompletedProcess:  # fmt: skip
    """``subprocess.run(command, cwd=cwd, env=env or lit_env(), capture_output=True, text=True, timeout=timeout)``:
    the same result (arguments, exit status, stdout and stderr as text; subprocess.TimeoutExpired at ``timeout``, the
    process group killed). ``command`` is ``lit``, ``python script.py`` or ``python -m module`` of this interpreter:
    it runs in a process forked from the zygote, which is that program as a fresh interpreter would run it for what
    the tests assert (tests/lit_zygote.py says how, and what differs). ``fresh_interpreter=True``, for tests about the
    process itself (start-up, imports, the console script, what a real interpreter prints), runs a fresh one."""
    env = lit_env() if env is None else env
    if fresh_interpreter or os.environ.get("LIT_MLCOURSE_TEST_ZYGOTE", "1") == "0":
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return ZYGOTE.run(command, cwd=cwd, env=env, timeout=timeout)


def run_lit(
    *args: str, cwd: Path | None = None, check: bool = True, timeout: int = 240, fresh_interpreter: bool = False
) -> subprocess.CompletedProcess:
    """Run the installed ``lit`` executable as a user would (forked from the zygote, see ``run_command``; a fresh
    interpreter with ``fresh_interpreter=True``); output captured as text."""
    lit = Path(sys.executable).parent / "lit"
    result = run_command([str(lit), *args], cwd=cwd, timeout=timeout, fresh_interpreter=fresh_interpreter)
    if check and result.returncode != 0:
        raise AssertionError(f"lit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def run_lit_in(
    root: Path, *args: str, timeout: int = 240, fresh_interpreter: bool = False
) -> tuple[Path, subprocess.CompletedProcess]:
    """``run_lit(*args)`` with ``root`` as its working folder and trainer.default_root_dir: ``root``, and the
    finished process (what a test needs of a run started in the ``background``)."""
    where = ("--trainer.default_root_dir", str(root))
    return root, run_lit(*args, *where, cwd=root, timeout=timeout, fresh_interpreter=fresh_interpreter)


def lit_in_process(*args: str) -> None:
    """``lit *args`` in this process, through `lit`'s entry point (lit_mlcourse.cli.main): the same code without
    another ~7 s interpreter start. On one torch thread, as ``run_lit``'s subprocesses: the tests' tiny models train
    fastest so, and a second thread would fight the subprocesses running beside it for the cores (a one-epoch quick
    start took 16 s on two threads of a busy 2-core machine, 4 s on one). The environment is restored after it, as
    after a subprocess: Lightning's seeding leaves PL_GLOBAL_SEED and PL_SEED_WORKERS there."""
    import torch

    from lit_mlcourse.cli import main

    global _BEFORE_IN_PROCESS
    threads, environment = torch.get_num_threads(), dict(os.environ)
    torch.set_num_threads(1)
    _BEFORE_IN_PROCESS = environment
    try:
        main(list(args))
    finally:
        torch.set_num_threads(threads)
        for key in set(os.environ) - set(environment):  # key by key: `background` threads copy it meanwhile
            del os.environ[key]
        os.environ.update({key: value for key, value in environment.items() if os.environ.get(key) != value})
        _BEFORE_IN_PROCESS = None


@pytest.fixture(scope="module")
def background() -> Iterator[ThreadPoolExecutor]:
    """Runs `lit` subprocesses two at a time beside the tests. A run uses one core (OMP_NUM_THREADS=1, DDP's
    processes one each) and spends ~6 s of it importing Lightning, so one run at a time leaves the other core of a
    2-core machine idle: a module starts the runs of its selected tests here up front (see ``selected``), and each
    test waits for the result of its own."""
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)  # runs not started yet belong to no test that is still to run


def selected(request: pytest.FixtureRequest) -> Callable[..., bool]:
    """``wanted(*words)``: whether a test of the requesting module that this session runs has one of ``words`` in
    its name (parameter ids included), so that a module starts only the runs of the tests selected (``-k``)."""
    names = [item.name for item in request.session.items if item.module is request.module]
    return lambda *words: any(word in name for name in names for word in words)


def optional_fixture(request: pytest.FixtureRequest, name: str):
    """The fixture's value; ``None`` where it skips (the tests that need it skip on their own)."""
    try:
        return request.getfixturevalue(name)
    except pytest.skip.Exception:
        return None


def after(pool: ThreadPoolExecutor, first: Future, function: Callable, *args, **kwargs) -> Future:
    """``function(*args, **kwargs)`` in ``pool`` once ``first`` has succeeded (its error otherwise). Submit
    ``first`` before: the pool starts its tasks in order, so ``first`` is running or done when this one waits."""

    def run():
        first.result()
        return function(*args, **kwargs)

    return pool.submit(run)


@pytest.fixture(scope="session")
def judge_checkpoint(tmp_path_factory) -> str:
    """best.ckpt of a one-epoch `lit fit --config configs/quickstart.yaml`: a digits classifier, the GAN's judge.
    Run in this process (``lit_in_process``; the quick start as a subprocess is tests/test_cli_end_to_end.py's)."""
    root = tmp_path_factory.mktemp("judge")
    lit_in_process("fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.max_epochs", "1",
                   "--trainer.default_root_dir", str(root))  # fmt: skip
    return str(root / "quickstart" / "version_0" / "checkpoints" / "best.ckpt")


# The short CIFAR runs of the tests: one epoch of 2 batches of 16 images.
CIFAR_SHORT = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--data.batch_size", "16")


@pytest.fixture(scope="session")
def cifar_cnn_run(cifar_layer, tmp_path_factory) -> Path:
    """The run folder of a short `lit fit --config configs/cifar10_cnn.yaml` on the synthetic CIFAR-10 folder (a
    subprocess): tests/test_cifar_configs.py checks it as the config's own fit, and its best.ckpt is the CIFAR GAN's
    judge and the checkpoint the CIFAR predictions come from."""
    root = tmp_path_factory.mktemp("cifar_cnn")
    run_lit("fit", "--config", str(CONFIGS / "cifar10_cnn.yaml"), "--config", str(cifar_layer), *CIFAR_SHORT,
            "--trainer.default_root_dir", str(root), cwd=root)  # fmt: skip
    return root / "cifar10_cnn" / "version_0"


@pytest.fixture(scope="session")
def cifar_judge_checkpoint(cifar_cnn_run) -> str:
    """best.ckpt of a short `lit fit --config configs/cifar10_cnn.yaml` on the synthetic CIFAR-10 folder."""
    return str(cifar_cnn_run / "checkpoints" / "best.ckpt")


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    """A stand-in for torch-fidelity's pt_inception-2015-12-05-6726825d.pth (the real one is a download): the same
    network with random weights, its batch-norm statistics set from random images so that features neither vanish
    nor explode through its 90 layers."""
    from unittest import mock

    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    with (
        mock.patch.object(inception, "load_state_dict_from_url", return_value=None),
        mock.patch.object(inception.FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        network = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average: one batch sets the statistics
            module.reset_running_stats()
    network.train()
    with torch.no_grad():
        network(torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)))
        network.fc.weight.mul_(0.1)  # logits spread like a trained network's, not so far that softmax underflows
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(network.state_dict(), path)
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    """The runs of ``run_command`` that the zygote left to a fresh interpreter, and why (slower, not wrong)."""
    reasons: dict[str, list[list[str]]] = {}
    for command, reason in ZYGOTE.fresh:
        reasons.setdefault(reason, []).append(command)
    for reason, commands in reasons.items():
        example = " ".join(commands[0][:3])
        terminalreporter.write_line(f"lit zygote: {len(commands)} fresh interpreter(s) (e.g. {example}): {reason}")


# The fit the preemption and restart tests stop, resume and compare with the run that never stopped: the quick start
# on 2 CPU processes, 4 steps an epoch, 3 epochs (test_sigterm_workers.py, test_slurm.py, test_torchrun_faults.py).
DDP_FIT = ["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.strategy", "ddp", "--trainer.devices", "2",
           "--trainer.accelerator", "cpu", "--data.batch_size", "32", "--trainer.limit_train_batches", "4",
           "--trainer.limit_val_batches", "0", "--trainer.max_epochs", "3", "--test_after_fit", "false"]  # fmt: skip


@pytest.fixture(scope="session")
def ddp_fit_reference(tmp_path_factory) -> dict:
    """The final ``last.ckpt`` of ``DDP_FIT`` run without a stop (Lightning's own launcher), loaded."""
    import torch

    root = tmp_path_factory.mktemp("ddp_fit_reference")
    run_lit(*DDP_FIT, "--trainer.default_root_dir", str(root))
    last = root / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    return torch.load(last, map_location="cpu", weights_only=True)
