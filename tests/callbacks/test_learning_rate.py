import math

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_mlcourse.callbacks import LearningRatePlot
from lit_mlcourse.schedules import WarmupDecay


class TwoGroups(L.LightningModule):
    """Two parameter groups with their own base rates, under a 3-step warmup and a cosine decay over 10 steps."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(2, 1), nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss((self.first(x) + self.second(x)).squeeze(1), y)

    def configure_optimizers(self):
        groups = [{"params": self.first.parameters(), "lr": 0.1}, {"params": self.second.parameters(), "lr": 0.01}]
        optimizer = torch.optim.SGD(groups)
        scheduler = WarmupDecay(optimizer, warmup_steps=3, total_steps=10)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def expected_factor(step: int) -> float:  # the schedule as the course writes it
    return (step + 1) / 3 if step < 3 else 0.5 * (1 + math.cos(math.pi * (step - 3) / 7))


def test_the_plot_records_the_rate_each_update_used_and_reaches_png_and_tensorboard(tmp_path):
    loader = DataLoader(TensorDataset(torch.randn(20, 2), torch.randn(20)), batch_size=4)
    plot = LearningRatePlot()
    trainer = L.Trainer(max_epochs=2, logger=TensorBoardLogger(tmp_path, name="", version=""), callbacks=[plot],
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(TwoGroups(), loader)
    assert plot.steps == list(range(10))
    assert plot.rates["SGD group 0"] == [0.1 * expected_factor(step) for step in range(10)]
    assert plot.rates["SGD group 1"] == [0.01 * expected_factor(step) for step in range(10)]
    assert (tmp_path / "lr_schedule.png").stat().st_size > 10_000
    assert "lr_schedule" in EventAccumulator(str(tmp_path)).Reload().Tags()["images"]
