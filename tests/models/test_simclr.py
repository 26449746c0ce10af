import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.neighbors import KNeighborsClassifier

from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.losses import nt_xent
from lit_mlcourse.models import SimCLR
from lit_mlcourse.models.simclr import knn_predict
from lit_mlcourse.nets import MLP, SmallCNN


def small_cnn(num_classes: int, in_channels: int) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, widths=(8, 16))


def simclr(**kwargs) -> SimCLR:
    return SimCLR(small_cnn, num_classes=10, image_shape=(1, 8, 8), **kwargs)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_vote_matches_scikit_learn_cosine_neighbours(k):
    generator = torch.Generator().manual_seed(k)
    bank, queries = torch.randn(300, 12, generator=generator), torch.randn(50, 12, generator=generator)
    labels = torch.randint(0, 4, (300,), generator=generator)
    reference = KNeighborsClassifier(k, metric="cosine").fit(bank.numpy(), labels.numpy()).predict(queries.numpy())
    predicted = knn_predict(F.normalize(queries, dim=1), F.normalize(bank, dim=1), labels, k, num_classes=4)
    np.testing.assert_array_equal(predicted.numpy(), reference)


def test_backbone_keeps_the_features_and_drops_the_head():
    model = simclr(projection_dim=32)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 16)  # SmallCNN's out_features
    prefixes = {key.split(".")[0] for key in model.state_dict() if not key.startswith(("train_", "val_", "test_"))}
    assert prefixes == {"backbone", "projection", "probe"}
    torch.testing.assert_close(model.backbone(torch.ones(1, 1, 8, 8)).shape, torch.Size([1, 16]))
    assert model.projection(torch.randn(3, 16)).shape == (3, 32)


def test_training_loss_is_nt_xent_of_both_views_plus_the_detached_probe():
    torch.manual_seed(0)
    model = simclr(temperature=0.3)
    model.log = lambda *args, **kwargs: None
    model.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False)
    model.eval()  # batch norm in eval mode: the pass below sees the same statistics
    view1, view2, labels = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.arange(4)
    loss = model.training_step(((view1, view2), labels), 0)
    features = model.backbone(torch.cat([view1, view2]))
    projections = model.projection(features)
    expected = nt_xent(projections[:4], projections[4:], 0.3) + F.cross_entropy(model.probe(features[:4]), labels)
    torch.testing.assert_close(loss, expected)
    # The probe's loss must not train the backbone: its features are detached.
    probe_loss = loss - nt_xent(projections[:4], projections[4:], 0.3)
    gradients = torch.autograd.grad(probe_loss, list(model.backbone.parameters()), allow_unused=True)
    assert all(gradient is None or not gradient.any() for gradient in gradients)
    assert torch.autograd.grad(probe_loss, model.probe.weight)[0].abs().sum() > 0


def test_probe_gets_no_weight_decay():
    groups = simclr().parameter_groups()
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 2  # the probe's weight and bias
    optimizer = simclr(optimizer=lambda params: torch.optim.AdamW(params, lr=0.1, weight_decay=0.5)).build_optimizer()
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.5, 0.0]


def test_data_without_views_is_refused_naming_the_setting(tmp_path):
    trainer = L.Trainer(fast_dev_run=1, default_root_dir=tmp_path, enable_progress_bar=False)
    with pytest.raises(
        ConfigValueError, match=r"with `views: \{\}` \(or view options.*; DigitsDataModule has no views set\."
    ):
        trainer.fit(simclr(), DigitsDataModule())


def test_a_short_fit_reports_knn_and_probe_accuracy(tmp_path):
    torch.manual_seed(0)
    data = DigitsDataModule(batch_size=128, views={"min_scale": 0.5, "flip": False})
    trainer = L.Trainer(max_epochs=2, default_root_dir=tmp_path, enable_progress_bar=False, logger=False)
    trainer.fit(simclr(), data)
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/probe_acc", "val/knn_acc", "val/probe_acc"} <= set(metrics)
    # Even barely trained convolutional features separate digits far above chance (0.1) by their neighbours.
    assert metrics["val/knn_acc"] > 0.5
    tested = trainer.test(trainer.model, datamodule=data, verbose=False)  # one result per loader: bank, test split
    assert [set(results) for results in tested] == [{"test/knn_acc", "test/probe_acc"}] * 2


def test_bad_temperature_is_refused():
    with pytest.raises(ConfigValueError, match=r"model.temperature=0 must be > 0"):
        simclr(temperature=0)


def test_a_network_without_features_is_refused():
    def mlp(num_classes, in_channels):
        return MLP(64, num_classes)

    with pytest.raises(ConfigValueError, match=r"model.backbone: MLP has no `features`"):
        SimCLR(mlp, num_classes=10, image_shape=(1, 8, 8))
