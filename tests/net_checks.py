"""The contract every network in lit_mlcourse.nets keeps, checked the same way for each."""

import torch
from torch import nn


def check_classifier(net: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Finite logits of the right shape; every trainable parameter receives a gradient and frozen ones none;
    in eval mode (BatchNorm on running statistics, no dropout) ``features`` gives (B, out_features) and
    ``head(features(x))`` is exactly ``net(x)``."""
    logits = net(x)
    assert logits.shape == (len(x), num_classes)
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    for name, parameter in net.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name
    net.eval()
    assert net.features(x).shape == (len(x), net.out_features)
    torch.testing.assert_close(net.head(net.features(x)), net(x))
