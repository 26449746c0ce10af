"""A small convolutional classifier for small images (8x8 digits up to 32x32 CIFAR-10)."""

from collections.abc import Sequence

import torch
from torch import nn


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Stages of two 3x3 conv blocks, each stage but the last followed by 2x2 max pooling,
    then average pooling to ``pool_size`` x ``pool_size``, dropout and a linear classifier.

    Args:
        num_classes: number of output logits (linked from the DataModule).
        in_channels: image channels (linked from the DataModule).
        widths: channels of each stage; the image side is halved between stages.
        dropout: dropout before the classifier.
        pool_size: side of the map the features are averaged down to and flattened from: 1 is global
            average pooling (any image size, position forgotten); the side of the last stage's map keeps where
            things are (e.g. 4 for 8x8 digits with two stages), which kNN on SimCLR features of digits needs.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64),
        dropout: float = 0.1,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        channels = in_channels
        for index, width in enumerate(widths):
            stages += [_conv_block(channels, width), _conv_block(width, width)]
            if index < len(widths) - 1:
                stages.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(pool_size), nn.Flatten())
        self.out_features = channels * pool_size**2
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.out_features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.features(x))
