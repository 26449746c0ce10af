"""Training several variants of one config in one process, each into its own sub-folder of the run folder: what
``lit cv`` and the studies share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch import seed_everything

from lit_mlcourse.callbacks.preemption import NotRequeued, PreemptionSignals, StoppedForRequeue
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.runs import finish_wandb_run
from lit_mlcourse.summary import run_summary, write_json

if TYPE_CHECKING:
    from lit_mlcourse.cli import LitCLI


def fit_variant(cli: LitCLI, config: Namespace, run_dir: Path) -> tuple[L.Trainer, dict[str, Any]]:
    """Fit ``config`` (a changed copy of the running subcommand's config) into ``run_dir`` and write its
    ``summary.json`` there. Returns the trainer (``cli.model`` and ``cli.datamodule`` are the variant's) and the
    summary."""
    seed_everything(config.seed_everything, workers=True)  # the same initial weights and batch order for every variant
    trainer = cli.instantiate_run(config, run_dir)
    trainer.fit(cli.model, cli.datamodule)
    _finish_wandb_run(trainer)
    for callback in trainer.callbacks:
        if isinstance(callback, PreemptionSignals) and callback.requeued:  # this command does not resume
            if callback.requeue_failure:
                raise NotRequeued(f"{callback.requeue_failure}; the job ends here: submit the command again")
            raise StoppedForRequeue(
                f"stopped at {run_dir.name}; the requeued job runs the command again from the start"
            )
    summary = run_summary(trainer, dict(trainer.callback_metrics))
    if trainer.is_global_zero:
        write_json(Path(summary["run_dir"]) / "summary.json", summary)
    return trainer, summary


def _finish_wandb_run(trainer: L.Trainer) -> None:
    """One wandb run per variant: wandb otherwise hands the next variant the run still open."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and getattr(logger, "_experiment", None) is not None:
            finish_wandb_run(logger.experiment)


def add_callback(config: Namespace, class_path: str, **init_args: Any) -> None:
    """Append a callback to ``config.trainer.callbacks``, so that the run's config.yaml records it: the variant
    reruns as it ran with ``lit fit --config <variant folder>/config.yaml``."""
    callbacks = config.trainer.get("callbacks")
    callbacks = [] if callbacks is None else list(callbacks) if isinstance(callbacks, list) else [callbacks]
    callbacks.append(Namespace(class_path=class_path, init_args=Namespace(**init_args)))
    config.trainer.callbacks = callbacks


def callback_of(trainer: L.Trainer, kind: type) -> Any:
    """The trainer's last callback of class ``kind``: the one :func:`add_callback` appended, should the config have
    its own as well (a HessianEigenvalues at chosen epochs, say)."""
    return [callback for callback in trainer.callbacks if isinstance(callback, kind)][-1]


def first_config_name(config: Namespace) -> str:
    """The first ``--config`` file, as given, for messages; else ``the config``."""
    files = config.get("config") or []
    return str(files[0]) if files else "the config"


def check_settings(option: str, values: list[int], what: str, example: str) -> None:
    """The values a study runs (``what``: batch size, depth): at least one, each a whole number >= 1, none twice. A bad
    one raises :class:`ConfigValueError` naming ``option`` and the value, before anything runs."""
    given = f"{option} {list(values)}"
    if not values:
        raise ConfigValueError(f"{given}: give at least one {what}, e.g. {example}.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigValueError(
                f"{given}: {value!r} is not a {what}: each must be a whole number >= 1, e.g. {example}."
            )
    repeated = sorted({value for value in values if list(values).count(value) > 1})
    if repeated:
        raise ConfigValueError(f"{given}: {repeated[0]} is given twice: give each {what} once.")
