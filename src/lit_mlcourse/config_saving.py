"""The resolved config of a run, saved where it will be looked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_warn

from lit_mlcourse.runs import WANDB_RUN_FILE, mark_slurm_job

CHECKPOINT_KEY = "lit_mlcourse_config"


def free_config_path(folder: Path, text: str, filename: str = "config.yaml") -> Path | None:
    """Where to save ``text``: ``config.yaml``, or ``config-1.yaml``, ``config-2.yaml`` ... when a
    different config is already there (a resumed run with other settings). ``None`` when the same config is
    there, so that rerunning into the same folder neither crashes nor duplicates. The checkpoint a run starts
    from is not part of what makes it the same: a resume names one, the run it continues did not."""
    stem, suffix = Path(filename).stem, Path(filename).suffix
    index = 0
    while True:
        path = folder / (filename if index == 0 else f"{stem}-{index}{suffix}")
        if not path.exists():
            return path
        if not config_changes(path.read_text(), text):
            return None
        index += 1


def config_changes(before: str, after: str) -> list[str]:
    """The dotted keys whose values differ between two saved configs (YAML texts), ``ckpt_path`` aside, each
    as ``key: old -> new``."""

    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(value, dict):
            return {prefix: value}
        items: dict[str, Any] = {}
        for key, inner in value.items():
            items.update(flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return items

    old, new = flat(yaml.safe_load(before) or {}), flat(yaml.safe_load(after) or {})
    keys = sorted((set(old) | set(new)) - {"ckpt_path"})
    missing = "(not set)"
    return [
        f"{key}: {old.get(key, missing)} -> {new.get(key, missing)}" for key in keys if old.get(key) != new.get(key)
    ]


def remember_wandb_run(trainer: L.Trainer) -> None:
    """Keep the wandb run's id in the run folder (the trainer's root), for a resumed fit to continue the run."""
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger" and logger.version:
            path = Path(trainer.default_root_dir) / WANDB_RUN_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{logger.version}\n")


class SaveRunConfig(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` in the run folder, inside every checkpoint
    (``checkpoint["lit_mlcourse_config"]``, YAML text), and in each logger's config. In a SLURM job, `fit`
    also names the job in the run folder (the trainer's root), for a requeued job to continue there, and keeps
    the id of its wandb run there."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        self.config_text = self.parser.dump(self.config, skip_none=False)
        log_dir = trainer.log_dir  # a collective call: every rank asks
        if trainer.is_global_zero and log_dir is not None:
            path = free_config_path(Path(log_dir), self.config_text, self.config_filename)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self.config_text)
                first = Path(log_dir) / self.config_filename
                if path != first:  # a run continued in its folder with other settings: say which
                    changes = config_changes(first.read_text(), self.config_text)
                    rank_zero_warn(
                        f"this run continues in {log_dir} with a config that differs from its {first.name}; saved "
                        f"as {path.name}. Changed: " + "; ".join(changes[:20])
                    )
            config = yaml.safe_load(self.config_text)
            for logger in trainer.loggers:
                logger.log_hyperparams({"config": config})
            if stage == "fit":
                # Written here, after every rank chose its folder: a rank still choosing would see this one taken.
                mark_slurm_job(Path(trainer.default_root_dir))
                remember_wandb_run(trainer)
        self.already_saved = True

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = getattr(self, "config_text", None) or self.parser.dump(
            self.config, skip_none=False
        )
