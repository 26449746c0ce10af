import pytest
import torch
import torchvision
from net_checks import check_classifier
from torch import nn

from lit_mlcourse.downloads import OfflineError
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.nets import TorchvisionNet


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """No download can happen, and the torch hub cache is an empty temporary folder."""
    monkeypatch.setenv("LIT_MLCOURSE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8), (3, 64, 64)])
def test_shapes_finite_and_every_parameter_learns(name, shape):
    torch.manual_seed(0)
    net = TorchvisionNet(num_classes=10, in_channels=shape[0], name=name)
    check_classifier(net, torch.randn(2, *shape), num_classes=10)


def test_classifier_becomes_head_and_identity():
    resnet = TorchvisionNet(num_classes=7)
    assert isinstance(resnet.head, nn.Linear) and (resnet.head.in_features, resnet.head.out_features) == (512, 7)
    assert isinstance(resnet.features.fc, nn.Identity) and resnet.out_features == 512
    mobilenet = TorchvisionNet(num_classes=7, name="mobilenet_v3_small")
    assert isinstance(mobilenet.features.classifier[3], nn.Identity) and mobilenet.out_features == 1024
    assert sum(p.numel() for p in resnet.parameters()) == sum(
        p.numel() for p in torchvision.models.resnet18(num_classes=7).parameters()
    )


def test_gray_images_start_copied_into_rgb():
    net = TorchvisionNet(num_classes=10, in_channels=1)
    adapter = net.features[0]
    assert isinstance(adapter, nn.Conv2d) and (adapter.in_channels, adapter.out_channels) == (1, 3)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(adapter(x), x.expand(2, 3, 8, 8))


def test_unknown_name_suggests_close_names():
    with pytest.raises(ConfigValueError, match=r"'resnt18'.*did you mean.*resnet18"):
        TorchvisionNet(num_classes=10, name="resnt18")
    with pytest.raises(ConfigValueError, match=r"no nn\.Linear classifier"):
        TorchvisionNet(num_classes=10, name="squeezenet1_1")


def test_bad_weights_name_lists_valid_ones(offline_hub):
    with pytest.raises(ConfigValueError, match=r"'IMAGENET'.*IMAGENET1K_V1, DEFAULT"):
        TorchvisionNet(num_classes=10, weights="IMAGENET")


def test_missing_weights_offline_name_the_cache_path(offline_hub):
    with pytest.raises(OfflineError) as error:
        TorchvisionNet(num_classes=10, weights="DEFAULT")
    assert str(offline_hub / "resnet18-f37072fd.pth") in str(error.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in str(error.value)


def test_cached_weights_load_offline_and_get_a_new_classifier(offline_hub):
    torch.manual_seed(0)
    pretrained = torchvision.models.mobilenet_v3_small()  # stands in for the ImageNet weights
    offline_hub.mkdir(parents=True)
    torch.save(pretrained.state_dict(), offline_hub / "mobilenet_v3_small-047dcff4.pth")

    net = TorchvisionNet(num_classes=10, name="mobilenet_v3_small", weights="MobileNet_V3_Small_Weights.IMAGENET1K_V1")
    torch.testing.assert_close(net.features.features[0][0].weight, pretrained.features[0][0].weight)
    torch.testing.assert_close(net.features.classifier[0].weight, pretrained.classifier[0].weight)
    assert (net.head.in_features, net.head.out_features) == (1024, 10)

    same_classes = TorchvisionNet(num_classes=1000, name="mobilenet_v3_small", weights="IMAGENET1K_V1")
    torch.testing.assert_close(same_classes.head.weight, pretrained.classifier[3].weight)


def test_restoring_a_checkpoint_needs_no_pretrained_file(offline_hub):
    from lit_mlcourse.nets.torchvision_net import weights_from_checkpoint

    with weights_from_checkpoint():  # offline and nothing cached: the checkpoint will bring every weight
        restored = TorchvisionNet(num_classes=10, name="mobilenet_v3_small", weights="DEFAULT")
    offline_hub.mkdir(parents=True)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), offline_hub / "mobilenet_v3_small-047dcff4.pth")
    fresh = TorchvisionNet(num_classes=10, name="mobilenet_v3_small", weights="DEFAULT")
    shapes = {key: value.shape for key, value in fresh.state_dict().items()}
    assert {key: value.shape for key, value in restored.state_dict().items()} == shapes
    restored.load_state_dict(fresh.state_dict())  # strict: the same architecture


def test_googlenet_drops_its_auxiliary_heads_and_keeps_the_pretrained_input_transform(offline_hub):
    from lit_mlcourse.nets.torchvision_net import weights_from_checkpoint

    torch.manual_seed(0)
    net = TorchvisionNet(num_classes=5, name="googlenet")
    net(torch.randn(2, 3, 64, 64)).sum().backward()
    assert not any("aux" in key for key in net.state_dict())
    assert all(parameter.grad is not None for parameter in net.parameters())  # DDP needs no unused parameters
    offline_hub.mkdir(parents=True)
    pretrained = torchvision.models.googlenet(aux_logits=True, init_weights=True)
    torch.save(pretrained.state_dict(), offline_hub / "googlenet-1378be20.pth")
    fresh = TorchvisionNet(num_classes=5, name="googlenet", weights="DEFAULT")
    with weights_from_checkpoint():
        restored = TorchvisionNet(num_classes=5, name="googlenet", weights="DEFAULT")
    assert fresh.features.transform_input and restored.features.transform_input
    restored.load_state_dict(fresh.state_dict())
