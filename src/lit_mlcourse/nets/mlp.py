"""Multi-layer perceptron; with no hidden layer it is plain linear regression."""

from collections.abc import Sequence

import torch
from torch import nn

from lit_mlcourse.nets.activations import ActivationName, make_activation


class MLP(nn.Module):
    """``Linear -> [BatchNorm] -> activation -> [Dropout]`` per hidden size, then a linear output layer.

    Args:
        in_features: size of the (flattened) input.
        out_features: size of the output.
        hidden: hidden layer sizes; ``[]`` is a single linear layer (linear regression).
        activation: name of the hidden activation.
        dropout: dropout probability after each hidden activation.
        batch_norm: batch normalization before each hidden activation.
        linear_skip: add a linear map from the input straight to the output ("wide and deep"), so
            the hidden layers only have to learn what a linear model misses. Their output layer then
            starts at zero: training begins from the linear model (as zero-initialised residual
            branches do in Goyal et al., 2017, "Accurate, Large Minibatch SGD").
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        hidden: Sequence[int] = (),
        activation: ActivationName = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        linear_skip: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        self.body = nn.Sequential(*layers)
        self.skip = nn.Linear(in_features, out_features, bias=False) if linear_skip and hidden else None
        if self.skip is not None:
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_features) -> (B, out_features)
        out = self.body(x)
        if self.skip is not None:
            out = out + self.skip(x)
        return out
