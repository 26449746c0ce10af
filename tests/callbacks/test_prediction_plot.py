import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from lit_mlcourse.callbacks import PredictionVsTruthPlot
from lit_mlcourse.models import Regressor


def test_the_plot_holds_every_evaluated_prediction_and_reaches_png_and_tensorboard(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(100, 3, 2), torch.randn(100) * 5 + 30
    stats = {"mean": [0.0, 0.0], "std": [1.0, 1.0], "target_mean": 30.0, "target_std": 5.0}
    model = Regressor(input_shape=(3, 2), hidden=[8], standardization=stats)
    train, val, test = (DataLoader(TensorDataset(x[part], y[part]), batch_size=16)
                        for part in (slice(0, 60), slice(60, 85), slice(85, 100)))  # fmt: skip
    trainer = L.Trainer(
        max_epochs=2,
        logger=TensorBoardLogger(tmp_path, name="", version=""),
        callbacks=[PredictionVsTruthPlot()],
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, train, val)
    model.eval()
    with torch.no_grad():  # the last validation ran with the final weights: the same predictions, every sample
        torch.testing.assert_close(model.outcomes["val"], torch.stack([model(x[60:85]), y[60:85]], dim=1))
    assert (tmp_path / "prediction_vs_truth_val.png").stat().st_size > 10_000
    assert "val/prediction_vs_truth" in EventAccumulator(str(tmp_path)).Reload().Tags()["images"]

    trainer.test(model, test, verbose=False)
    torch.testing.assert_close(model.outcomes["test"][:, 1], y[85:100])
    assert (tmp_path / "prediction_vs_truth_test.png").is_file()
