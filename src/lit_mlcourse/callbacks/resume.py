"""A resumed fit that continues exactly where the checkpoint left off: the same batches, the same random draws.

Two gaps in Lightning close here:

- Its checkpoints hold no RNG state: after a resume, dropout masks (and anything else drawn from the global
  generators in the training process) differ from those of a run that never stopped. The torch, CUDA, numpy and
  Python states of every process go into each checkpoint and each process's are put back just before the first
  training batch after a resume: between a checkpoint and the next batch nothing else draws from them (the training
  loaders draw from their own generators, see data.resumable).
- On SIGTERM (a preemption without SLURM) Lightning stops after the running batch without a checkpoint:
  callbacks.preemption saves ``last.ckpt`` as it stops, in every process at the same step.
- Loggers buffer rows: they are flushed with every checkpoint, so that a kill loses none logged before it.
- It restores a stateful training loader only if the loader is made after the restore, but a schedule that asks for
  ``estimated_stepping_batches`` makes (and starts iterating) it before: the resumed epoch then replays epoch 0's
  order from its start. The loader state is applied here, after the restore, and the epoch's iterator made anew.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

CHECKPOINT_KEY = "lit_mlcourse_rng_states"


def _plain(states: dict[str, Any]) -> dict[str, Any]:
    """The states as tensors and plain containers (numpy's array as a list), loadable with weights_only=True."""
    states = dict(states)
    if "numpy" in states:
        name, keys, position, has_gauss, cached = states["numpy"]
        states["numpy"] = (name, keys.tolist(), int(position), int(has_gauss), float(cached))
    return states


def _restorable(states: dict[str, Any]) -> dict[str, Any]:
    """The saved states as Lightning sets them: numpy's keys as an array, CUDA's only where there is CUDA."""
    import numpy as np

    states = dict(states)
    if not torch.cuda.is_available():
        states.pop("torch.cuda", None)
    if "numpy" in states:
        name, keys, position, has_gauss, cached = states["numpy"]
        states["numpy"] = (name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached)
    return states


class ExactResume(Callback):
    """Saves every process's RNG states in checkpoints (``checkpoint["lit_mlcourse_rng_states"]``, one entry per
    global rank) and restores them at the first training batch after a resume; applies the training loaders' saved
    state (see the module's text)."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] | None = None
        self.loader_states: list[dict[str, Any]] = []

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = _plain(_collect_rng_states(include_cuda=torch.cuda.is_available()))
        states = [state]
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every process takes part in a checkpoint (Trainer.save_checkpoint ends with a barrier too).
            states = [None] * trainer.world_size
            torch.distributed.all_gather_object(states, state)
        checkpoint[CHECKPOINT_KEY] = states
        # The metrics logged up to the checkpoint go to disk with it: CSVLogger buffers 100 steps, and a kill would
        # lose the ones a resumed run does not log again.
        for logger in trainer.loggers:
            logger.save()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.pending = checkpoint.get(CHECKPOINT_KEY)
        fit_loop_state = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
        self.loader_states = fit_loop_state.get("combined_loader") or []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.loader_states:
            return
        states, self.loader_states = self.loader_states, []
        fit_loop = trainer.fit_loop
        fit_loop._combined_loader_states_to_load = []  # applied below, whether or not Lightning would have
        fit_loop._combined_loader = None  # made before the restore: make the loaders again
        fit_loop.setup_data()
        if fit_loop._combined_loader is None:
            return
        fit_loop._combined_loader._load_state_dicts(states)
        iter(fit_loop._data_fetcher)  # the resumed epoch's iterator, from the loaded state

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.pending is None:
            return
        states, self.pending = self.pending, None
        if len(states) != trainer.world_size:
            rank_zero_warn(
                f"The checkpoint holds the random states of {len(states)} process(es), this run has "
                f"{trainer.world_size}: the random draws after the resume (dropout, ...) differ from an uninterrupted "
                "run."
            )
            return
        _set_rng_states(_restorable(states[trainer.global_rank]))
