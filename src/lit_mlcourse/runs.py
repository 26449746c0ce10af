"""Run folders: ``<trainer.default_root_dir>/<name>/version_<N>``, shared by every logger of a run.

Loggers name their folders with placeholders (``{default_root_dir}``, ``{name}``, ``{version}``,
``{run_dir}``) that are filled in on a copy of the config when a run starts. The saved ``config.yaml``
keeps the placeholders, so running it again starts a new version instead of writing over the old one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

# Set by the launching process so that DDP workers started later agree on the version it chose.
VERSION_ENV = "LIT_MLCOURSE_RUN_VERSION"
PLACEHOLDERS = ("{default_root_dir}", "{name}", "{version}", "{run_dir}")


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


def choose_run_folder(config: Namespace) -> Path:
    """Settle ``name`` and ``trainer.default_root_dir`` in ``config`` and pick the run folder: the
    version a logger names explicitly, else the one the launching process chose (DDP workers), else the
    next free ``version_<N>``."""
    root = Path(config.trainer.get("default_root_dir") or "runs")
    config.trainer.default_root_dir = str(root)
    config.name = experiment_name(config)
    explicit = [
        logger.init_args.version
        for logger in loggers_of(config)
        if logger.init_args.get("version") is not None and "{" not in str(logger.init_args.version)
    ]
    version = explicit[0] if explicit else None
    if version is None and _is_child_rank():
        version = os.environ.get(VERSION_ENV)
    if version is None:
        version = next_version(root / config.name)
    version = f"version_{version}" if isinstance(version, int) else str(version)
    os.environ[VERSION_ENV] = version
    return root / config.name / version


def fill_run_folder(config: Namespace, run_dir: Path) -> None:
    """Fill the placeholders of the loggers' string arguments in ``config`` (a copy of the parsed
    config) for the run folder ``run_dir``. Without any logger, the run folder becomes the trainer's
    root, so that checkpoints and files still land in it."""
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
            configure_wandb(logger.init_args)
    if not loggers:
        config.trainer.default_root_dir = str(run_dir)


def loggers_of(config: Namespace) -> list[Namespace]:
    """The logger entries of the trainer config (``class_path`` + ``init_args``)."""
    loggers = config.trainer.get("logger")
    if isinstance(loggers, Namespace):
        loggers = [loggers]
    if not isinstance(loggers, list):
        return []
    return [entry for entry in loggers if isinstance(entry, Namespace) and "class_path" in entry]


def configure_wandb(args: Namespace) -> None:
    """wandb stays offline unless the user logged in (an API key in the environment or ~/.netrc) or
    asked for online mode (WANDB_MODE=online)."""
    if args.get("offline") is False and not wandb_online_requested():
        args.offline = True


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
