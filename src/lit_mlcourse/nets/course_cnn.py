"""The course's seed CIFAR-10 CNN: three 5x5 convolutions and two linear layers (the "CIFAR-10 quick" layout)."""

import torch
from torch import nn


def _conv_relu_pool(in_channels: int, out_channels: int) -> list[nn.Module]:
    # padding 2 keeps the side of a 5x5 convolution; the pooling alone halves it.
    return [nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


class CourseCNN(nn.Module):
    """``[Conv5x5 -> ReLU -> MaxPool2x2] x 3`` with 32, 32 and 64 channels, then ``Linear -> ReLU -> Linear``.

    A 32x32 image ends as a 64x4x4 map. An adaptive average pool to 4x4 before flattening leaves that unchanged
    and lets other image sizes use the same first linear layer: 64x64 images (8x8 maps) are averaged down,
    8x8 digits (1x1 maps) are repeated up.

    Args:
        num_classes: number of output logits (linked from the DataModule).
        in_channels: image channels (linked from the DataModule).
        hidden: size of the hidden linear layer, which is also :attr:`out_features`.
        dropout: dropout before the last linear layer (0 disables it).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu_pool(in_channels, 32),  # (B, 32, H/2, W/2)
            *_conv_relu_pool(32, 32),  # (B, 32, H/4, W/4)
            *_conv_relu_pool(32, 64),  # (B, 64, H/8, W/8)
            nn.AdaptiveAvgPool2d(4),  # (B, 64, 4, 4)
            nn.Flatten(),  # (B, 1024)
            nn.Linear(64 * 4 * 4, hidden),
            nn.ReLU(inplace=True),  # (B, hidden)
        )
        self.out_features = hidden
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.features(x))
