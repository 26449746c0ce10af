"""What a checkpoint was trained on and how, written into every checkpoint as ``checkpoint["lit_mlcourse"]``.

The model and DataModule classes and the data's fingerprint let ``--ckpt_path`` refuse a checkpoint of another model
or other data (checkpoint_identity). The rest says how to make the run again: results depend on the seed, the
versions, and (through the order of floating-point sums and of the workers' random draws) on the number of torch
threads and DataLoader workers, and on whether deterministic algorithms were enforced.

Plain strings, numbers, booleans, lists and dicts only: the checkpoint still loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

import lit_mlcourse
from lit_mlcourse.checkpoint_identity import RECORD_KEY, identity


def run_conditions(trainer: L.Trainer) -> dict[str, Any]:
    """The seed, versions, threads, workers and determinism of the running process."""
    seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything (LightningCLI's `seed_everything`)
    workers = getattr(trainer.datamodule, "hparams", {}).get("num_workers") if trainer.datamodule else None
    return {
        "seed": int(seed) if seed is not None else None,
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
        "torch_threads": int(torch.get_num_threads()),
        # int(): the parser's NonNegativeInt is a subclass that torch.load(weights_only=True) refuses
        "num_workers": int(workers) if workers is not None else None,
        "world_size": int(trainer.world_size),
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),  # a TorchVersion, which weights_only loading refuses
            "lightning": str(L.__version__),
            "lit_mlcourse": lit_mlcourse.__version__,
        },
    }


class RunRecord(Callback):
    """Writes ``checkpoint["lit_mlcourse"]`` (see the module's text): the identity is taken once as training starts,
    the run's conditions at each checkpoint."""

    def __init__(self) -> None:
        self.identity: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # the data as the run reads it (a training CSV changed during the run changes nothing)
            self.identity = identity(pl_module, trainer.datamodule)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        taken = self.identity or identity(pl_module, trainer.datamodule)
        checkpoint[RECORD_KEY] = {"format": 1, **taken, **run_conditions(trainer)}
