import pytest
import torch

from lit_mlcourse.nets import SmallCNN


@pytest.mark.parametrize(("shape", "widths"), [((1, 8, 8), (32, 64)), ((3, 32, 32), (16, 32, 64))])
def test_shapes_finite_and_every_parameter_learns(shape, widths):
    torch.manual_seed(0)
    net = SmallCNN(num_classes=10, in_channels=shape[0], widths=widths)
    logits = net(torch.randn(4, *shape))
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert net.out_features == widths[-1]


def test_pool_size_keeps_where_things_are():
    torch.manual_seed(0)
    net = SmallCNN(num_classes=10, in_channels=1, widths=(8, 16), pool_size=4)
    assert net.out_features == 16 * 4 * 4 and net.features(torch.randn(3, 1, 8, 8)).shape == (3, 256)
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    # Global pooling cannot tell a digit from its mirror image when the convolutions are symmetric; the 4x4 map can.
    net.eval()
    image = torch.zeros(1, 1, 8, 8)
    image[..., :, :3] = 1.0
    mirrored = image.flip(-1)
    pooled = SmallCNN(num_classes=10, in_channels=1, widths=(8, 16)).eval()
    for conv in [m for m in (*net.modules(), *pooled.modules()) if isinstance(m, torch.nn.Conv2d)]:
        torch.nn.init.constant_(conv.weight, 0.1)  # left-right symmetric kernels
    torch.testing.assert_close(pooled.features(image), pooled.features(mirrored))
    assert not torch.allclose(net.features(image), net.features(mirrored))
