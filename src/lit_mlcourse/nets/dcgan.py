"""DCGAN's generator and discriminator (Radford et al., 2016) for square images whose side is a power of two
(8x8 digits, 32x32 CIFAR-10, 64x64 photos)."""

import math
from collections.abc import Sequence

import torch
from torch import nn

from lit_mlcourse.errors import ConfigValueError


def _doublings(image_shape: Sequence[int]) -> int:
    """How many times the 4x4 start is doubled to reach the image side."""
    _, height, width = image_shape
    if height != width or height < 8 or height & (height - 1):
        raise ConfigValueError(
            f"DCGAN needs square images whose side is a power of two >= 8; the data gives {height}x{width}. "
            "Resize the images (e.g. data.image_size 32 or 64)."
        )
    return int(math.log2(height)) - 2


def _extra(channels: int, count: int, activation: nn.Module) -> list[nn.Module]:
    """``count`` shape-keeping 3x3 convolution blocks."""
    layers: list[nn.Module] = []
    for _ in range(count):
        layers += [nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), activation]
    return layers


def init_dcgan_weights(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: convolutions N(0, 0.02); batch-norm scales N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """Noise ``(B, latent_dim)`` -> images ``(B, C, S, S)`` in ``[-1, 1]``: a 4x4 map of ``width * 2^(n-1)``
    channels from a transposed convolution, then ``n`` stride-2 transposed convolutions that double the side
    and halve the channels (batch norm and ReLU between, tanh at the end), ``S = 4 * 2^n``.

    Args:
        image_shape: ``(channels, side, side)`` of the images (linked from the DataModule).
        latent_dim: size of the noise vector.
        width: channels of the last hidden map; the earlier ones double back to the 4x4 start.
        extra_layers: 3x3 convolutions (batch norm, ReLU) added at the last hidden map, as the DCGAN reference
            code's ``n_extra_layers``: depth for small images, whose few doublings leave the network shallow.
    """

    def __init__(
        self, image_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 64, width: int = 64, extra_layers: int = 0
    ) -> None:
        super().__init__()
        doublings = _doublings(image_shape)
        self.latent_dim = latent_dim
        channels = width * 2 ** (doublings - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, channels, 4, 1, 0, bias=False),  # (B, channels, 4, 4)
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        for _ in range(doublings - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += _extra(channels, extra_layers, nn.ReLU(inplace=True))
        layers += [nn.ConvTranspose2d(channels, image_shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, latent_dim) -> (B, C, S, S)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Images ``(B, C, S, S)`` -> one real/fake logit each: stride-2 convolutions that halve the side down to
    4x4 and double the channels from ``width`` (LeakyReLU 0.2; batch norm except after the first), then a 4x4
    convolution to the logit.

    Args:
        image_shape: ``(channels, side, side)`` of the images (linked from the DataModule).
        width: channels of the first map.
        extra_layers: 3x3 convolutions (batch norm, LeakyReLU) added after the first map, as the DCGAN reference
            code's ``n_extra_layers``.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), width: int = 64, extra_layers: int = 0) -> None:
        super().__init__()
        doublings = _doublings(image_shape)
        layers: list[nn.Module] = [nn.Conv2d(image_shape[0], width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        layers += _extra(width, extra_layers, nn.LeakyReLU(0.2, inplace=True))
        channels = width
        for _ in range(doublings - 1):
            layers += [
                nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels *= 2
        layers += [nn.Conv2d(channels, 1, 4, 1, 0), nn.Flatten(0)]  # (B,)
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B,) logits
        return self.net(images)
