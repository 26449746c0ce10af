import lightning as L
import pytest
import torch

from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.errors import ConfigValueError
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
    probabilities = trainer.predict(model, dm)[0]
    assert probabilities.shape == (32, 10)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(32))


def test_top5_accuracy_counts_the_target_among_the_five_largest_logits():
    model = ImageClassifier(small_cnn, num_classes=10, image_shape=(1, 8, 8))
    logits = torch.arange(10.0).expand(4, 10)  # the five largest: classes 5..9
    model.val_metrics.update(logits, torch.tensor([9, 5, 4, 0]))
    metrics = model.val_metrics.compute()
    assert metrics["val/acc_top5"] == 0.5 and metrics["val/acc"] == 0.25
    assert "val/acc_top5" not in ImageClassifier(small_cnn, num_classes=2).val_metrics.compute()


def test_each_metric_keeps_its_own_counts_over_batches():
    """A first batch whose true classes are all in the top 5 made torchmetrics group macro F1 with top-5
    accuracy (equal states after one update): F1 then came out 1.0 for a classifier that missed some."""
    from sklearn.metrics import f1_score

    model = ImageClassifier(small_cnn, num_classes=10, image_shape=(1, 8, 8))
    generator = torch.Generator().manual_seed(0)
    targets = torch.arange(40) % 10
    logits = torch.nn.functional.one_hot(targets, 10).float() * 5 + torch.randn(40, 10, generator=generator)
    logits[3] = torch.nn.functional.one_hot((targets[3] + 1) % 10, 10) * 9.0  # wrong, but target in the top 5
    logits[25] = torch.nn.functional.one_hot((targets[25] + 2) % 10, 10) * 9.0
    for batch in range(0, 40, 8):
        model.test_metrics.update(logits[batch : batch + 8], targets[batch : batch + 8])
    metrics = model.test_metrics.compute()
    predictions = logits.argmax(1)
    assert float(metrics["test/acc"]) == pytest.approx(float((predictions == targets).float().mean()))
    assert float(metrics["test/f1"]) == pytest.approx(f1_score(targets, predictions, average="macro"), abs=1e-6)
    assert float(metrics["test/f1"]) < 1


def test_class_names_must_match_the_class_count():
    with pytest.raises(ConfigValueError, match=r"model.class_names has 2 names for 3 classes"):
        ImageClassifier(small_cnn, num_classes=3, class_names=["ants", "bees"])
    assert ImageClassifier(small_cnn, num_classes=3).class_names == ["0", "1", "2"]


def test_channels_last_changes_memory_order_not_results():
    torch.manual_seed(0)
    plain = ImageClassifier(small_cnn, num_classes=10, image_shape=(3, 16, 16)).eval()
    fast = ImageClassifier(small_cnn, num_classes=10, image_shape=(3, 16, 16), channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    fast.configure_model()
    conv = next(module for module in fast.net.modules() if isinstance(module, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(fast(x), plain(x))


def test_a_classifier_refuses_simclr_views(tmp_path):
    model = ImageClassifier(small_cnn, num_classes=10, image_shape=(1, 8, 8))
    trainer = L.Trainer(fast_dev_run=1, default_root_dir=tmp_path, enable_progress_bar=False)
    with pytest.raises(ConfigValueError, match=r"data.views makes SimCLR's pairs of views, which a classifier cannot"):
        trainer.fit(model, DigitsDataModule(views={}))
