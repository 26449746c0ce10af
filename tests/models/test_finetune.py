import lightning as L
import pytest
import torch
from torch.utils.data import TensorDataset

from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError
from lit_mlcourse.models import FineTunedClassifier, ImageClassifier, SimCLR
from lit_mlcourse.nets import MLP, ResNet18, SmallCNN


def small_cnn(num_classes: int, in_channels: int) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, widths=(8, 16))


def save(model, path) -> str:
    """A checkpoint as Lightning writes it (state dict, hyperparameters, on_save_checkpoint's additions)."""
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": {"_class_path": type(model).__name__}}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return str(path)


@pytest.fixture
def simclr_ckpt(tmp_path):
    torch.manual_seed(0)
    return save(SimCLR(small_cnn, num_classes=10, image_shape=(1, 8, 8)), tmp_path / "simclr.ckpt")


def finetuned(backbone_ckpt, net=small_cnn, **kwargs) -> FineTunedClassifier:
    return FineTunedClassifier(net, num_classes=3, image_shape=(1, 8, 8), backbone_ckpt=backbone_ckpt, **kwargs)


def test_backbone_weights_come_from_the_simclr_checkpoint(simclr_ckpt):
    pretrained = torch.load(simclr_ckpt, weights_only=True)["state_dict"]
    model = finetuned(simclr_ckpt)
    for key, value in model.net.features.state_dict().items():
        torch.testing.assert_close(value, pretrained[f"backbone.{key}"])
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)  # a new head for this task's classes


def test_a_classifier_checkpoint_is_refused_naming_the_file_and_its_model(tmp_path):
    path = save(ImageClassifier(small_cnn, num_classes=10, image_shape=(1, 8, 8)), tmp_path / "classifier.ckpt")
    with pytest.raises(
        ConfigValueError, match=rf"{path} is not a SimCLR checkpoint \(it was saved by ImageClassifier\)"
    ):
        finetuned(path)


def test_another_backbone_is_refused_naming_the_mismatching_keys(simclr_ckpt):
    def wider(num_classes, in_channels):
        return SmallCNN(num_classes, in_channels, widths=(8, 32))

    with pytest.raises(
        ConfigValueError,
        match=r"other shapes \(checkpoint vs network\): 3\.0\.weight \(16, 8, 3, 3\) vs \(32, 8, 3, 3\)",
    ):
        finetuned(simclr_ckpt, net=wider)

    def resnet(num_classes, in_channels):
        return ResNet18(num_classes, in_channels)

    with pytest.raises(
        ConfigValueError, match=rf"{simclr_ckpt} holds another backbone.*missing in the checkpoint: bn1\.bias"
    ) as error:
        finetuned(simclr_ckpt, net=resnet)
    assert "not in this network: 0.0.weight" in str(error.value)


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=rf"{tmp_path}/none.ckpt does not exist"):
        finetuned(str(tmp_path / "none.ckpt"))
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigValueError, match=rf"{corrupt} cannot be read as a checkpoint"):
        finetuned(str(corrupt))


def test_linear_mode_freezes_the_backbone_in_eval_mode(simclr_ckpt):
    model = finetuned(simclr_ckpt, mode="linear")
    assert not any(p.requires_grad for p in model.net.features.parameters())
    trained = {id(p) for p in model.parameter_groups()}
    assert trained == {id(p) for p in model.net.head.parameters()}
    model.train()
    assert not model.net.features.training and model.net.head.training


def test_linear_mode_keeps_the_pretrained_weights_and_statistics_through_a_fit(simclr_ckpt, tmp_path):
    model = finetuned(simclr_ckpt, mode="linear")
    pretrained = {key: value.clone() for key, value in model.net.features.state_dict().items()}
    head = model.net.head[1].weight.clone()
    data = DigitsDataModule(batch_size=32)
    data.num_classes = 3  # the head of this test's model: three classes
    data.setup("fit")
    for split in ("train", "val"):
        images, labels = data.datasets[split].tensors
        data.datasets[split] = TensorDataset(images * 3 + 1, labels % 3)  # other statistics than the pretraining's
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2, default_root_dir=tmp_path,
                        enable_progress_bar=False, logger=False, enable_checkpointing=False)  # fmt: skip
    trainer.fit(model, data)
    for key, value in model.net.features.state_dict().items():
        torch.testing.assert_close(value, pretrained[key], msg=key)  # weights and batch-norm running statistics
    assert not torch.equal(model.net.head[1].weight, head)  # the head trained


def test_finetune_mode_scales_the_backbone_learning_rate(simclr_ckpt):
    model = finetuned(simclr_ckpt, backbone_lr_factor=0.1, optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    optimizer = model.build_optimizer()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.05, 0.5])
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))


def test_without_a_checkpoint_it_is_the_scratch_baseline():
    torch.manual_seed(0)
    scratch = finetuned(None)
    torch.manual_seed(0)
    plain = ImageClassifier(small_cnn, num_classes=3, image_shape=(1, 8, 8))
    for (name, value), (_, reference) in zip(scratch.state_dict().items(), plain.state_dict().items(), strict=True):
        torch.testing.assert_close(value, reference, msg=name)


def test_a_network_without_features_is_refused():
    def mlp(num_classes, in_channels):
        return MLP(64, num_classes)

    with pytest.raises(ConfigValueError, match=r"model.net: MLP has no `features`"):
        finetuned(None, net=mlp)


def test_the_scratch_baseline_trains_its_backbone_at_the_full_rate():
    model = finetuned(None, backbone_lr_factor=0.1, optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    assert [group["lr"] for group in model.build_optimizer().param_groups] == pytest.approx([0.5, 0.5])
