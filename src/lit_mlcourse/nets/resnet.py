"""ResNet-18 from torchvision (random initialisation), with a stem for 32x32 images or the ImageNet one."""

from collections import OrderedDict
from typing import Literal

import torch
import torchvision
from torch import nn

from lit_mlcourse.errors import ConfigValueError


class ResNet18(nn.Module):
    """torchvision's ResNet-18, split into :attr:`features` (everything up to the global average pool) and
    :attr:`head` (the final linear layer).

    The ImageNet stem (7x7 stride-2 convolution, then 3x3 stride-2 max pool) shrinks a 32x32 image to 8x8
    before the first residual stage, throwing away most of its detail. The CIFAR stem (as in He et al., 2016,
    and most CIFAR-10 code) is a single 3x3 stride-1 convolution, so the four stages see 32, 16, 8 and 4 pixel
    maps; at the same image size the network then costs about 16 times as much compute.

    Args:
        num_classes: number of output logits (linked from the DataModule).
        in_channels: image channels (linked from the DataModule).
        stem: "cifar" for small images (32x32 and below), "imagenet" for large ones (e.g. 224x224).
        zero_init_residual: start each residual branch's last BatchNorm scale at zero, so that every block
            starts as the identity (Goyal et al., 2017, "Accurate, Large Minibatch SGD").
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        stem: Literal["cifar", "imagenet"] = "cifar",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ConfigValueError(f"ResNet18 stem must be 'cifar' or 'imagenet', not {stem!r}")
        model = torchvision.models.resnet18(
            weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual
        )
        if stem == "cifar":
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        elif in_channels != 3:
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        # torchvision initialises its convolutions so; a replaced conv1 would otherwise keep PyTorch's default.
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        children = OrderedDict(model.named_children())
        self.head = children.pop("fc")  # Linear(512, num_classes)
        # The torchvision names are kept (features.conv1, features.layer1, ...) so checkpoints stay readable.
        self.features = nn.Sequential(children)  # (B, C, H, W) -> (B, 512, 1, 1)
        self.features.add_module("flatten", nn.Flatten())  # (B, 512)
        self.out_features = self.head.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.features(x))
