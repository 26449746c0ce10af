"""Lightning's ModelCheckpoint with ``save_last=True`` meaning what it says again."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LastAndBestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes ``last.ckpt`` at every epoch's save point (the end of validation, or of the
    training epoch when there is none), not only when a top-k checkpoint was saved there.

    Since Lightning 2.6, ``save_last=True`` writes ``last.ckpt`` only together with a top-k save: with the best
    checkpoint kept by a monitored metric, ``last.ckpt`` stops at the last improvement, and ``--ckpt_path last``
    would retrain the epochs after it.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def _save_last_if_missing(self, trainer: L.Trainer) -> None:
        # Skipped when this step was saved already (a top-k save writes last.ckpt with it), in sanity checks and
        # outside fit; a deferred save (a monitored metric not logged yet) is Lightning's to make.
        skip = self._should_skip_saving_checkpoint(trainer) or self._defer_save_until_validation
        if self.save_last and not skip:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
