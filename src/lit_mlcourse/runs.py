"""Run folders: ``<trainer.default_root_dir>/<name>/version_<N>``, shared by every logger of a run.

Loggers name their folders with placeholders (``{default_root_dir}``, ``{name}``, ``{version}``,
``{run_dir}``) that are filled in on a copy of the config when a run starts. The saved ``config.yaml``
keeps the placeholders, so running it again starts a new version instead of writing over the old one.

A SLURM job that SLURM restarts (``#SBATCH --requeue``) is the exception: it continues in the run folder of its
first attempt (named by the folder's ``slurm_job_id`` file), from the checkpoint Lightning saved there on SLURM's
signal.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import string
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lit_mlcourse.checkpoints import HPC_CHECKPOINT, newest_runs, resume_point
from lit_mlcourse.errors import ConfigValueError

# Set by the launching process so that DDP workers started later agree on the version it chose.
VERSION_ENV = "LIT_MLCOURSE_RUN_VERSION"
PLACEHOLDERS = ("{default_root_dir}", "{name}", "{version}", "{run_dir}")
# In a run folder trained by a SLURM job: the job's id, so that the job finds the folder again when requeued.
SLURM_JOB_FILE = "slurm_job_id"
# In a run folder logged to wandb: the wandb run's id, so that a fit resumed from one of its checkpoints continues it.
WANDB_RUN_FILE = "wandb_run_id"


def experiment_name(config: Namespace) -> str:
    """``name`` from the config, else the stem of the first ``--config`` file, else the model class."""
    if config.get("name"):
        return config.name
    files = config.get("config") or []
    if files:
        return Path(str(files[0])).stem
    model = config.get("model")
    class_path = model.get("class_path", "") if isinstance(model, Namespace) else ""
    return class_path.rsplit(".", 1)[-1].lower() or "lit"


def check_folder_name(value: Any, key: str, root: Path) -> Any:
    """``value`` (the experiment name or a run version) when it is one plain folder name. It becomes part of the run
    folder's path: a ``/``, ``..`` or an absolute path would put the run (checkpoints, config.yaml) outside ``root``."""
    text = str(value)
    if text not in ("", ".", "..") and not any(character in text for character in "/\\\0"):
        return value
    suggestion = re.sub(r"[/\\\0]+", "_", text).strip("._") or "run"
    raise ConfigValueError(
        f"{key}={text!r} is not one folder name: the run folder is <trainer.default_root_dir>/<name>/<version>, and "
        f"a '/', '\\' or '..' would put it outside {root}. Use a plain name such as {suggestion!r}, or set "
        "trainer.default_root_dir to where the runs should go."
    )


def next_version(folder: Path) -> str:
    """``version_<N>`` with N one past the highest existing one under ``folder``."""
    numbers = [-1]
    if folder.is_dir():
        for entry in folder.iterdir():
            match = re.fullmatch(r"version_(\d+)", entry.name)
            if match and entry.is_dir():
                numbers.append(int(match.group(1)))
    return f"version_{max(numbers) + 1}"


def _is_child_rank() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def choose_run_folder(config: Namespace, resumable: bool = False) -> Path:
    """Settle ``name`` and ``trainer.default_root_dir`` in ``config`` and pick the run folder: the
    version a logger names explicitly, else the one the launching process chose (DDP workers), else (when
    ``resumable`` and no ``ckpt_path`` is given) the folder of a requeued SLURM job's first attempt, whose
    checkpoint becomes ``ckpt_path``, else the next free ``version_<N>``."""
    check_slurm_job_ids()
    root = Path(config.trainer.get("default_root_dir") or "runs")
    config.trainer.default_root_dir = str(root)
    config.name = check_folder_name(experiment_name(config), "name", root)
    explicit = [
        check_folder_name(logger.init_args.version, "trainer.logger.init_args.version", root)
        for logger in loggers_of(config)
        if logger.init_args.get("version") is not None and "{" not in str(logger.init_args.version)
    ]
    version = explicit[0] if explicit else None
    if version is None and _is_child_rank():
        version = os.environ.get(VERSION_ENV)
    if config.get("ckpt_path") == "last":
        version = resolve_last(config, root, version, resumable)
    if version is None and resumable and not config.get("ckpt_path"):
        requeued = requeued_run(root / config.name)
        if requeued is not None:
            version, config.ckpt_path = requeued[0].name, str(requeued[1])
            rank_zero_info(
                f"lit: SLURM job {os.environ['SLURM_JOB_ID']} was requeued (restart "
                f"{os.environ['SLURM_RESTART_COUNT']}): resuming {requeued[0]} from {requeued[1]}"
            )
    if version is None:
        version = next_version(root / config.name)
    version = f"version_{version}" if isinstance(version, int) else str(version)
    os.environ[VERSION_ENV] = version
    return root / config.name / version


def resolve_last(config: Namespace, root: Path, version: Any, resumable: bool) -> Any:
    """``--ckpt_path last``: the ``last.ckpt`` of the newest run of the experiment (of the run folder ``version``, when
    it is fixed) becomes ``config.ckpt_path``, and a fit continues in that run folder (the version returned). With
    no checkpoint yet, a fit starts afresh (the first attempt of a job that always passes ``last``); the other
    subcommands fail. A damaged or missing ``last.ckpt`` beside other checkpoints fails, naming the newest valid one.
    """
    experiment = root / config.name
    fixed = version if version is None or not isinstance(version, int) else f"version_{version}"
    point = resume_point([experiment / str(fixed)] if fixed is not None else newest_runs(experiment))
    if point is None:
        if not resumable:
            raise ConfigValueError(f"--ckpt_path last: no run under {experiment} holds a checkpoint to load.")
        rank_zero_info(f"lit: --ckpt_path last: no run under {experiment} holds a checkpoint yet: starting afresh")
        config.ckpt_path = None
        return version
    config.ckpt_path = str(point[1])
    if not resumable:
        return version
    rank_zero_info(f"lit: resuming {point[0]} from {point[1]}")
    return point[0].name if version is None else version


def check_slurm_job_ids() -> None:
    """SLURM's job ids are numbers. Lightning hands SLURM_JOB_ID (or SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID) to
    ``scontrol requeue`` on SLURM's signal after checking only that it starts with a digit, and lit names run
    folders by it: anything else is refused before either happens."""
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        value = os.environ.get(name)
        if value is not None and not re.fullmatch(r"\d{1,20}", value):
            raise ConfigValueError(
                f"{name}={value!r} is not a SLURM job id (digits only): refused, nothing was run. Unset it outside "
                "a SLURM job; inside one, SLURM sets it."
            )


def requeued_run(folder: Path) -> tuple[Path, Path] | None:
    """When SLURM has restarted this job (SLURM_RESTART_COUNT >= 1): the run folder under ``folder`` that
    names the job (the newest, should several) and the checkpoint to continue from, the newest
    ``hpc_ckpt_<n>.ckpt`` (saved by Lightning on SLURM's signal before the requeue) or else
    ``checkpoints/last.ckpt`` (a requeue after a node failure). ``None`` when there is nothing to continue."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or int(os.environ.get("SLURM_RESTART_COUNT") or 0) < 1 or not folder.is_dir():
        return None
    marks = [mark for mark in folder.glob(f"*/{SLURM_JOB_FILE}") if mark.read_text().strip() == job]
    for mark in sorted(marks, key=lambda path: path.stat().st_mtime, reverse=True):
        run = mark.parent
        hpc = {int(match.group(1)): path for path in run.iterdir() if (match := HPC_CHECKPOINT.fullmatch(path.name))}
        if hpc:
            return run, hpc[max(hpc)]
        if (run / "checkpoints" / "last.ckpt").is_file():
            return run, run / "checkpoints" / "last.ckpt"
    return None


def mark_slurm_job(run_dir: Path) -> None:
    """Name the SLURM job (if any) that trains in ``run_dir``, for :func:`requeued_run`."""
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / SLURM_JOB_FILE).write_text(job + "\n")


def keep_csv_metrics(loggers: list[Any], before_step: int) -> None:
    """Lightning's CSVLogger deletes the metrics.csv of a folder it opens. A run resumed in its folder keeps
    the rows logged before its checkpoint (``step`` < ``before_step``; later ones are logged again) and
    appends to them. Call on global rank zero, before training."""
    for logger in loggers:
        path = Path(logger.log_dir) / "metrics.csv" if isinstance(logger, CSVLogger) else None
        if path is None or not path.is_file():
            continue
        reader = csv.DictReader(io.StringIO(path.read_text()))
        rows = [row for row in reader if row.get("step") and int(float(row["step"])) < before_step]
        header = list(reader.fieldnames or [])
        with warnings.catch_warnings():  # its warning that the old rows will be deleted: not so
            warnings.filterwarnings("ignore", message="Experiment logs directory")
            writer = logger.experiment  # deletes metrics.csv
        with path.open("w", newline="") as file:
            table = csv.DictWriter(file, fieldnames=header)
            table.writeheader()
            table.writerows(rows)
        writer.metrics_keys = header  # the columns of the file appended to (Lightning's writer)


def fill_run_folder(config: Namespace, run_dir: Path, resuming: bool = False) -> None:
    """Fill the placeholders of the loggers' string arguments in ``config`` (a copy of the parsed
    config) for the run folder ``run_dir``, which becomes the trainer's root: checkpoints without a
    logger, and Lightning's ``hpc_ckpt_<n>.ckpt`` on SLURM's requeue signal, land in it. ``resuming``: a fit
    that continues from ``config.ckpt_path``, whose wandb run it continues too."""
    root = Path(config.trainer.default_root_dir)
    values = {
        "default_root_dir": str(root),
        "name": config.name,
        "version": str(run_dir.relative_to(root / config.name)),
        "run_dir": str(run_dir),
    }
    loggers = loggers_of(config)
    for logger in loggers:
        for key, value in vars(logger.init_args).items():
            if isinstance(value, str) and any(token in value for token in PLACEHOLDERS):
                setattr(logger.init_args, key, value.format(**values))
        if logger.class_path.rsplit(".", 1)[-1] == "WandbLogger":
            configure_wandb(logger.init_args, run_dir, config.get("ckpt_path") if resuming else None)
    config.trainer.default_root_dir = str(run_dir)


def loggers_of(config: Namespace) -> list[Namespace]:
    """The logger entries of the trainer config (``class_path`` + ``init_args``)."""
    loggers = config.trainer.get("logger")
    if isinstance(loggers, Namespace):
        loggers = [loggers]
    if not isinstance(loggers, list):
        return []
    return [entry for entry in loggers if isinstance(entry, Namespace) and "class_path" in entry]


def configure_wandb(args: Namespace, run_dir: Path, resumed_checkpoint: str | None = None) -> None:
    """wandb stays offline unless the user logged in (an API key in the environment or ~/.netrc) or
    asked for online mode (WANDB_MODE=online). Unless the config names the wandb run (``id`` or ``version``),
    a fit resumed from a checkpoint continues the wandb run of the checkpoint's run folder, and a run that
    continues in its own folder (a requeued SLURM job) its own; any other run starts a new one."""
    if args.get("offline") is False and not wandb_online_requested():
        args.offline = True
    if args.get("offline") is False and (problem := wandb_server_problem()) is not None:
        # wandb would retry for its init_timeout (90 s) and then fail the run with a traceback from inside Lightning.
        rank_zero_warn(
            f"wandb: {problem}: this run logs offline instead (its wandb/offline-run-* folder in the run folder); "
            "upload it later with `wandb sync <that folder>`."
        )
        args.offline = True
    if args.get("id") is None and args.get("version") is None:
        args.id = stored_wandb_run(run_dir, resumed_checkpoint) or new_wandb_run_id()


def finish_wandb_run(run: Any, exit_code: int = 0) -> None:
    """Finish a wandb run this package opened and wait until its files are complete on disk. ``run.finish()``
    alone returns before wandb's service process has written the run's transaction log (``run-<id>.wandb`` was
    still 7 bytes long after 3 of 9 in-process fits here), so whatever reads the run right after the command
    (a test, a notebook, `wandb sync`) saw part of it. Ending wandb's session waits for the service to close its
    files; the next run starts a new service (about a second)."""
    import wandb

    run.finish(exit_code=exit_code)
    try:
        wandb.teardown()
    except SystemExit as error:  # wandb exits when its service process failed: the command's own status stands
        rank_zero_warn(f"wandb: its service process ended with status {error.code}; see the run's logs/ folder.")


def stored_wandb_run(run_dir: Path, resumed_checkpoint: str | None) -> str | None:
    """The wandb run id kept in ``run_dir``, else in the run folder of ``resumed_checkpoint``
    (``<run>/checkpoints/<name>.ckpt`` or ``<run>/<name>.ckpt``)."""
    folders = [run_dir]
    if resumed_checkpoint and Path(resumed_checkpoint).is_file():
        checkpoint = Path(resumed_checkpoint).resolve()
        folders += [checkpoint.parent, checkpoint.parent.parent]
    for folder in folders:
        if (folder / WANDB_RUN_FILE).is_file():
            return (folder / WANDB_RUN_FILE).read_text().strip() or None
    return None


def new_wandb_run_id() -> str:
    """A fresh id in wandb's own format: 8 random characters of [a-z0-9] (wandb keeps its generator private)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def wandb_server_problem(timeout: float = 5.0) -> str | None:
    """Why wandb's server (``WANDB_BASE_URL``, else api.wandb.ai) cannot be reached in ``timeout`` seconds, or
    ``None`` when a TCP connection to it opens."""
    import socket
    from urllib.parse import urlsplit

    url = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as error:
        return f"its server {url} cannot be reached ({type(error).__name__}: {error})"


def wandb_online_requested() -> bool:
    if os.environ.get("WANDB_MODE", "").lower() == "online" or os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def as_plain(value: Any) -> Any:
    """A jsonargparse Namespace as plain dicts and lists (for JSON and loggers)."""
    if isinstance(value, Namespace):
        return {key: as_plain(item) for key, item in vars(value).items()}
    if isinstance(value, (list, tuple)):
        return [as_plain(item) for item in value]
    return value
