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
