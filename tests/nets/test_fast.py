import pytest
import torch
import torch.nn.functional as F
from net_checks import check_classifier
from torch import nn

from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.nets import FastNet


# (3, 2, 2) is the smallest image: the whitening conv leaves 1x1 maps, which every pooling keeps.
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8), (3, 64, 64), (3, 2, 2)])
def test_shapes_finite_and_every_trainable_parameter_learns(shape):
    torch.manual_seed(0)
    net = FastNet(num_classes=10, in_channels=shape[0], widths=(16, 32, 32))
    check_classifier(net, torch.randn(4, *shape), num_classes=10)  # frozen BN scales get no gradient
    assert net.out_features == 32


def test_airbench_layout():
    net = FastNet(num_classes=10)
    assert (net.whiten.in_channels, net.whiten.out_channels, net.whiten.kernel_size) == (3, 24, (2, 2))
    assert net.whiten.padding == (0, 0) and net.whiten.bias is not None
    convs = [m for m in net.features.modules() if isinstance(m, nn.Conv2d)][1:]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(24, 64), (64, 64), (64, 256), (256, 256)] + [
        (256, 256)
    ] * 2
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 and all(n.momentum == 0.4 and n.eps == 1e-12 for n in norms)
    # Frozen as in airbench: the BatchNorm scales only.
    frozen = {name for name, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {f"features.{group}.{index}.weight" for group in (2, 3, 4) for index in (2, 5)}
    assert sum(p.numel() for p in net.parameters()) == 1_972_792
    # 32x32 images: 31x31 after whitening, then 16, 8 and 4 pixel maps before the global max pool.
    maps = net.features[:5](torch.randn(2, 3, 32, 32))
    assert maps.shape == (2, 256, 4, 4)
    head = net.head[0]
    assert head.bias is None and (head.in_features, head.out_features) == (256, 10)
    features = torch.randn(2, 256)
    torch.testing.assert_close(net.head(features), head(features) / 9)


def _second_moment(outputs: torch.Tensor) -> torch.Tensor:
    flat = outputs.transpose(0, 1).reshape(outputs.shape[1], -1)  # (channels, N * H * W)
    return flat @ flat.T / flat.shape[1]


def test_init_whitening_decorrelates_patches():
    torch.manual_seed(0)
    # Smooth images with correlated colour channels and a non-zero mean: their 2x2 patches are far from white.
    noise = F.avg_pool2d(torch.randn(600, 3, 13, 13), kernel_size=2, stride=1)  # (600, 3, 12, 12)
    images = torch.einsum("oc,nchw->nohw", torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 1.0]]), noise)
    images = images + 0.3
    net = FastNet(num_classes=10)
    before = _second_moment(F.conv2d(images, net.whiten.weight))
    assert not torch.allclose(before[:12, :12], torch.eye(12), atol=0.1)

    net.init_whitening(images, eps=1e-8)  # 600 images: more than one chunk of 512
    weight = net.whiten.weight
    torch.testing.assert_close(weight[12:], -weight[:12])
    after = _second_moment(F.conv2d(images, weight))  # without the bias, which stays 0 and trainable
    torch.testing.assert_close(after[:12, :12], torch.eye(12), atol=2e-3, rtol=0)
    assert not weight.requires_grad and net.whiten.bias.requires_grad
    assert (net.whiten.bias == 0).all()

    # The default eps shrinks the variance of the weakest directions below 1, the strongest stay near 1.
    net.init_whitening(images, freeze=False)
    variances = _second_moment(F.conv2d(images, net.whiten.weight)).diagonal()[:12]
    assert net.whiten.weight.requires_grad
    assert (variances <= 1 + 1e-4).all() and variances[0] > 0.999
    assert torch.isfinite(net(images[:4])).all()


def test_init_whitening_with_one_channel_and_bad_widths():
    torch.manual_seed(0)
    gray = FastNet(num_classes=10, in_channels=1)
    assert gray.whiten.out_channels == 8  # 2 * 1 channel * 2 * 2 pixels
    images = torch.rand(16, 1, 8, 8)
    gray.init_whitening(images, eps=1e-8)
    after = _second_moment(F.conv2d(images, gray.whiten.weight))
    torch.testing.assert_close(after[:4, :4], torch.eye(4), atol=2e-3, rtol=0)

    narrow = FastNet(num_classes=10, whiten_width=8)  # the 4 strongest components and their negatives
    narrow.init_whitening(torch.rand(4, 3, 8, 8))
    for width in (25, 26):
        with pytest.raises(ConfigValueError, match="whiten_width"):
            FastNet(num_classes=10, whiten_width=width).init_whitening(torch.rand(4, 3, 8, 8))
    with pytest.raises(ConfigValueError, match="widths"):
        FastNet(num_classes=10, widths=())
