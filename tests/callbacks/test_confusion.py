import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from sklearn.metrics import confusion_matrix
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_mlcourse.callbacks import ConfusionMatrixPlot
from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.models import ImageClassifier
from lit_mlcourse.nets import SmallCNN


def small_cnn(num_classes: int, in_channels: int) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, widths=(8, 16))


def test_matrix_matches_sklearn_and_reaches_png_and_tensorboard(tmp_path):
    torch.manual_seed(0)
    dm = DigitsDataModule(batch_size=64)
    model = ImageClassifier(small_cnn, dm.num_classes, dm.image_shape, class_names=[f"d{i}" for i in range(10)])
    plot = ConfusionMatrixPlot()
    tensorboard = TensorBoardLogger(tmp_path, name="", version="")
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        logger=[CSVLogger(tmp_path, name="", version=""), tensorboard],
        callbacks=[plot],
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, dm)
    model.eval()
    with torch.no_grad():
        pairs = [(model(x).argmax(1), y) for x, y in dm.val_dataloader()]
    predicted, target = (torch.cat(column) for column in zip(*pairs, strict=True))
    expected = confusion_matrix(target, predicted, labels=list(range(10)))
    assert torch.equal(model.confusion["val"], torch.tensor(expected))  # rows: true class
    assert plot.written["val"] == tmp_path / "confusion_matrix_val.png" and plot.written["val"].stat().st_size > 0
    events = EventAccumulator(str(tmp_path)).Reload()
    assert "val/confusion_matrix" in events.Tags()["images"]

    trainer.test(model, dm, verbose=False)
    assert model.confusion["test"].sum() == len(dm.datasets["test"])
    assert (tmp_path / "confusion_matrix_test.png").is_file()
