import pytest
import torch
from torch import nn

from lit_mlcourse.nets import MLP
from lit_mlcourse.nets.activations import make_activation


def test_no_hidden_layer_is_linear_regression():
    net = MLP(162, 1, hidden=[])
    assert [type(m) for m in net.modules() if not isinstance(m, (nn.Sequential, MLP))] == [nn.Linear]
    x = torch.randn(5, 162)
    expected = x @ net.body[0].weight.T + net.body[0].bias
    torch.testing.assert_close(net(x), expected)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "gelu", "silu", "leaky_relu", "elu", "softplus"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_shapes_finite_and_every_parameter_learns(activation, batch_norm):
    torch.manual_seed(0)
    net = MLP(12, 3, hidden=[16, 8], activation=activation, dropout=0.2, batch_norm=batch_norm)
    out = net(torch.randn(7, 12))
    assert out.shape == (7, 3)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_layers_follow_the_arguments():
    net = MLP(4, 1, hidden=[8], activation="sigmoid", dropout=0.5, batch_norm=True)
    kinds = [type(module).__name__ for module in net.body]
    assert kinds == ["Linear", "BatchNorm1d", "Sigmoid", "Dropout", "Linear"]
    assert net.body[0].bias is None  # batch norm supplies the shift


def test_linear_skip_starts_as_the_linear_model_then_trains_everything():
    torch.manual_seed(0)
    net = MLP(6, 1, hidden=[4], linear_skip=True)
    x = torch.randn(32, 6)
    torch.testing.assert_close(net(x), x @ net.skip.weight.T)  # the hidden path starts at zero
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):  # the first step moves the output layer; then every parameter has a gradient
        optimizer.zero_grad()
        (net(x) - x.sum(dim=1, keepdim=True) ** 2).pow(2).mean().backward()
        optimizer.step()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    torch.testing.assert_close(net(x), net.body(x) + x @ net.skip.weight.T)


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown activation 'relu6'.*'sigmoid'"):
        make_activation("relu6")
