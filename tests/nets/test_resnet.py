import pytest
import torch
import torchvision
from net_checks import check_classifier
from torch import nn

from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.nets import ResNet18


@pytest.mark.parametrize(
    ("shape", "stem"),
    [((3, 32, 32), "cifar"), ((1, 8, 8), "cifar"), ((3, 64, 64), "imagenet"), ((1, 32, 32), "imagenet")],
)
def test_shapes_finite_and_every_parameter_learns(shape, stem):
    torch.manual_seed(0)
    net = ResNet18(num_classes=10, in_channels=shape[0], stem=stem)
    check_classifier(net, torch.randn(2, *shape), num_classes=10)
    assert net.out_features == 512


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_cifar_stem_is_one_3x3_stride_1_conv_without_max_pool():
    net = ResNet18(num_classes=10, in_channels=1)
    conv1 = net.features.conv1
    assert (conv1.in_channels, conv1.kernel_size, conv1.stride, conv1.padding) == (1, (3, 3), (1, 1), (1, 1))
    assert conv1.bias is None
    assert isinstance(net.features.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    # torchvision's resnet18 has a 7x7 conv1 from 3 channels and 1000 classes.
    expected = _parameter_count(torchvision.models.resnet18()) - 64 * 3 * 7 * 7 + 64 * 1 * 3 * 3 - 990 * (512 + 1)
    assert _parameter_count(net) == expected == 11_172_810
    assert _parameter_count(ResNet18(num_classes=10)) == 11_173_962  # the usual CIFAR ResNet-18 count


def test_imagenet_stem_keeps_torchvision_layers():
    net = ResNet18(num_classes=10, stem="imagenet")
    conv1 = net.features.conv1
    assert (conv1.in_channels, conv1.kernel_size, conv1.stride, conv1.padding) == (3, (7, 7), (2, 2), (3, 3))
    assert isinstance(net.features.maxpool, nn.MaxPool2d)
    # Same layers and names as torchvision: its weights load as they are, and give the same logits.
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    renamed = {
        (f"head.{k[3:]}" if k.startswith("fc.") else f"features.{k}"): v for k, v in reference.state_dict().items()
    }
    net.load_state_dict(renamed)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(net.eval()(x), reference(x))
    gray = ResNet18(num_classes=10, in_channels=1, stem="imagenet")
    assert gray.features.conv1.in_channels == 1
    assert _parameter_count(gray) == _parameter_count(net) - 64 * 2 * 7 * 7


def test_zero_init_residual_and_bad_stem():
    net = ResNet18(num_classes=10, zero_init_residual=True)
    last_norms = [
        block.bn2.weight for layer in ("layer1", "layer2", "layer3", "layer4") for block in getattr(net.features, layer)
    ]
    assert len(last_norms) == 8 and all((w == 0).all() for w in last_norms)
    with pytest.raises(ConfigValueError, match="stem"):
        ResNet18(num_classes=10, stem="tiny")
