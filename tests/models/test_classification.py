import lightning as L
import torch

from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.models import ImageClassifier
from lit_mlcourse.nets import SmallCNN


def small_cnn(num_classes: int, in_channels: int) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, widths=(8, 16))


def test_net_is_built_for_the_data():
    model = ImageClassifier(small_cnn, num_classes=4, image_shape=(1, 8, 8))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)


def test_label_smoothing_applies_to_training_only():
    torch.manual_seed(0)
    model = ImageClassifier(small_cnn, num_classes=10, image_shape=(1, 8, 8), label_smoothing=0.2)
    model.log = model.log_dict = lambda *args, **kwargs: None
    model.eval()
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    logits = model(x)
    torch.testing.assert_close(
        model._step((x, y), "train"), torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.2)
    )
    torch.testing.assert_close(model._step((x, y), "val"), torch.nn.functional.cross_entropy(logits, y))
    accuracy = model.val_metrics.compute()["val/acc"]
    assert accuracy == (logits.argmax(1) == y).float().mean()


def test_fast_dev_run_logs_stage_metrics(tmp_path):
    dm = DigitsDataModule(batch_size=32)
    model = ImageClassifier(small_cnn, num_classes=dm.num_classes, image_shape=dm.image_shape)
    trainer = L.Trainer(fast_dev_run=2, default_root_dir=tmp_path, enable_progress_bar=False)
    trainer.fit(model, dm)
    assert {"train/loss", "train/acc", "train/f1", "val/loss", "val/acc", "val/f1"} <= set(trainer.callback_metrics)
    trainer.test(model, dm, verbose=False)
    assert {"test/loss", "test/acc", "test/f1"} <= set(trainer.callback_metrics)
    predictions = trainer.predict(model, dm)
    assert predictions[0].dtype == torch.long and predictions[0].max() < 10
