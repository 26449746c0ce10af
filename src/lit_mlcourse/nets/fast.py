"""A fast CIFAR-10 network in the style of Keller Jordan's airbench94 (94% test accuracy in a few seconds on
one GPU with its training recipe): https://github.com/KellerJordan/cifar10-airbench.

Only the network is reproduced here. Airbench's speed also comes from its training loop (large learning rate,
label smoothing, Lookahead-style weight averaging, alternating flips, test-time augmentation, half precision,
training the whitening bias for 3 epochs only), which belongs to the task model and the data module.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lit_mlcourse.errors import ConfigValueError

# Airbench's BatchNorm settings. It gives momentum 0.6 as the weight of the old running average (TensorFlow's
# convention) and passes nn.BatchNorm2d(momentum=1 - 0.6): PyTorch's momentum is the weight of the new batch.
BATCHNORM_MOMENTUM = 0.4
BATCHNORM_EPS = 1e-12
WHITEN_KERNEL = 2


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
    # As airbench: the first in_channels filters start as the identity (Dirac deltas), an implicit residual
    # connection that lets the signal pass through the untrained network.
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(in_channels, out_channels)])
    return conv


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=BATCHNORM_EPS, momentum=BATCHNORM_MOMENTUM)
    # As airbench: only the shift is learnt, the scale stays 1.
    norm.weight.requires_grad_(False)
    return norm


def _conv_group(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        _conv3x3(in_channels, out_channels),
        # ceil_mode keeps an odd last row/column instead of dropping it, so 1-pixel maps stay 1 pixel and small
        # images (8x8 digits) work; 32x32 images give 16, 8, 4 pixel maps (airbench drops them: 15, 7, 3).
        nn.MaxPool2d(2, ceil_mode=True),
        _batch_norm(out_channels),
        nn.GELU(),
        _conv3x3(out_channels, out_channels),
        _batch_norm(out_channels),
        nn.GELU(),
    )


class _Scale(nn.Module):
    """Multiplies its input by a constant."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


class FastNet(nn.Module):
    """A 2x2 "whitening" convolution and GELU, then one group per width of
    ``Conv3x3 -> MaxPool2x2 -> BatchNorm -> GELU -> Conv3x3 -> BatchNorm -> GELU``, a global max pool and a
    bias-free linear layer whose logits are scaled down by ``logit_scale``.

    Call :meth:`init_whitening` with a few thousand (normalised) training images before training, as airbench
    does; without it the whitening convolution is an ordinary, trainable convolution. BatchNorm scales are
    frozen at 1 (``requires_grad=False``) as in airbench, so not every parameter is trainable. Any image side
    of 2 pixels or more works.

    Args:
        num_classes: number of output logits (linked from the DataModule).
        in_channels: image channels (linked from the DataModule).
        widths: output channels of each conv group; each group halves the image side.
        whiten_width: output channels of the whitening convolution; ``None`` means ``2 * in_channels * 4``
            (24 for RGB), the size :meth:`init_whitening` fills: each eigenvector of the 2x2 patch covariance
            and its negative.
        logit_scale: factor applied to the logits (airbench: 1/9); a small value keeps the initial softmax
            nearly uniform, which stabilises training at airbench's large learning rate.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 256, 256),
        whiten_width: int | None = None,
        logit_scale: float = 1 / 9,
    ) -> None:
        super().__init__()
        if not widths:
            raise ConfigValueError("FastNet widths must name at least one conv group width")
        if whiten_width is None:
            whiten_width = 2 * in_channels * WHITEN_KERNEL**2
        whiten = nn.Conv2d(in_channels, whiten_width, kernel_size=WHITEN_KERNEL, padding=0, bias=True)
        with torch.no_grad():
            whiten.bias.zero_()
        layers: list[nn.Module] = [whiten, nn.GELU()]  # (B, whiten_width, H - 1, W - 1)
        channels = whiten_width
        for width in widths:
            layers.append(_conv_group(channels, width))  # (B, width, ceil(H' / 2), ceil(W' / 2))
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())  # (B, widths[-1])
        self.out_features = channels
        self.head = nn.Sequential(nn.Linear(channels, num_classes, bias=False), _Scale(logit_scale))

    @property
    def whiten(self) -> nn.Conv2d:
        """The 2x2 whitening convolution (the first layer of :attr:`features`)."""
        return self.features[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.features(x))

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4, freeze: bool = True) -> None:
        """Set the whitening convolution so that its outputs on ``images`` are decorrelated with unit variance.

        As airbench's ``init_whitening_conv``: take every 2x2 patch of ``images`` as a vector (``4 * in_channels``
        values), estimate their (uncentred) covariance, and use its eigenvectors ``v`` with eigenvalues ``l``,
        largest first, as filters ``v / sqrt(l + eps)``. Output channel ``i`` (without the bias) then has second
        moment ``l_i / (l_i + eps)``, about 1, and is uncorrelated with the others. The second half of the
        channels are the negatives of the first half, so that GELU, which mostly discards negative values,
        keeps both signs of each component.

        Args:
            images: (N, C, H, W) training images, normalised as the network will see them (airbench: 5000).
            eps: added to the eigenvalues, so that near-constant directions (noise) are not blown up.
            freeze: keep the whitening weights fixed from now on (``requires_grad=False``), as airbench does;
                False makes them trainable. The bias stays trainable either way.
        """
        weight = self.whiten.weight  # (2K, C, 2, 2) with K eigenvectors used
        components = weight.shape[0] // 2
        patch_size = weight[0].numel()  # C * 2 * 2
        if weight.shape[0] % 2 or components > patch_size:
            raise ConfigValueError(
                f"FastNet.init_whitening needs an even whiten_width of at most {2 * patch_size} "
                f"(2 * in_channels * 4), not {weight.shape[0]}"
            )
        covariance = torch.zeros(patch_size, patch_size, dtype=torch.float64, device=weight.device)
        count = 0
        for chunk in images.split(512):  # bounded memory: 512 CIFAR images give 0.5M patches
            chunk = chunk.to(device=weight.device, dtype=torch.float32)
            patches = F.unfold(chunk, kernel_size=WHITEN_KERNEL)  # (n, C*2*2, L), ordered like weight[i].flatten()
            patches = patches.transpose(1, 2).reshape(-1, patch_size)  # (n * L, C*2*2)
            covariance += (patches.T @ patches).double()
            count += patches.shape[0]
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance / count)  # ascending; eigenvectors in columns
        eigenvalues, eigenvectors = eigenvalues.flip(0)[:components], eigenvectors.flip(1)[:, :components]
        filters = (eigenvectors / torch.sqrt(eigenvalues.clamp(min=0) + eps)).T.reshape(components, *weight.shape[1:])
        weight.copy_(torch.cat([filters, -filters]).to(weight.dtype))
        weight.requires_grad_(not freeze)
