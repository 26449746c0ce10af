import pytest
import torch
from net_checks import check_classifier
from torch import nn

from lit_mlcourse.nets import CourseCNN


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8), (3, 64, 64)])
def test_shapes_finite_and_every_parameter_learns(shape):
    torch.manual_seed(0)
    net = CourseCNN(num_classes=10, in_channels=shape[0], dropout=0.5)
    check_classifier(net, torch.randn(4, *shape), num_classes=10)


def test_layout_is_three_5x5_convs_and_two_linear_layers():
    net = CourseCNN(num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (5, 5), (2, 2)),
        (32, 32, (5, 5), (2, 2)),
        (32, 64, (5, 5), (2, 2)),
    ]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 4 * 4, 64), (64, 10)]
    assert net.out_features == 64
    assert sum(p.numel() for p in net.parameters()) == 145_578
    hidden = CourseCNN(num_classes=5, in_channels=1, hidden=32)
    assert hidden.out_features == 32 and hidden.head[-1].in_features == 32


def test_32x32_images_need_no_adaptive_pooling():
    net = CourseCNN(num_classes=10)
    pool = next(i for i, m in enumerate(net.features) if isinstance(m, nn.AdaptiveAvgPool2d))
    last_map = net.features[:pool](torch.randn(2, 3, 32, 32))
    assert last_map.shape == (2, 64, 4, 4)
    torch.testing.assert_close(net.features[pool](last_map), last_map)
