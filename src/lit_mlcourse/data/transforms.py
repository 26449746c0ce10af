"""Image augmentation two ways with one distribution: per sample with torchvision.transforms.v2 (in
DataLoader workers), and batch-wise on whatever device the batch sits on (no per-image Python work).

Both draw the crop offset of each axis uniformly from ``0 .. 2 * padding`` over a zero-padded image and
flip with probability 0.5, so the two data paths train on the same distribution of images.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torchvision.transforms import v2

# Per-channel mean and standard deviation of the CIFAR-10 training images, in [0, 1] units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image of ``images`` (B, C, H, W) zero-padded by ``padding`` pixels and cropped back to H x W at
    an offset drawn uniformly per image and axis (what ``v2.RandomCrop(size, padding)`` does per sample)."""
    if padding == 0:
        return images
    batch, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = torch.randint(0, 2 * padding + 1, (batch, 1), device=images.device) + torch.arange(
        height, device=images.device
    )
    cols = torch.randint(0, 2 * padding + 1, (batch, 1), device=images.device) + torch.arange(
        width, device=images.device
    )
    # One gather with broadcast indices: (B, 1, 1, 1), (1, C, 1, 1), (B, 1, H, 1), (B, 1, 1, W) -> (B, C, H, W)
    return padded[
        torch.arange(batch, device=images.device)[:, None, None, None],
        torch.arange(channels, device=images.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def random_flip(images: torch.Tensor, probability: float = 0.5) -> torch.Tensor:
    """Each image of (B, C, H, W) mirrored left-right with ``probability``."""
    flip = torch.rand(images.shape[0], device=images.device) < probability
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def color_jitter(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Brightness, contrast and saturation of each image (B, 3, H, W) in [0, 1] scaled by factors drawn
    uniformly from ``[1 - strength, 1 + strength]`` (as ``v2.ColorJitter(strength, strength, strength)``,
    applied in that fixed order)."""
    batch = images.shape[0]

    def factor() -> torch.Tensor:
        return 1 + strength * (2 * torch.rand(batch, 1, 1, 1, device=images.device) - 1)

    weights = gray_weights(images.device, images.dtype)
    images = (images * factor()).clamp(0, 1)
    mean_gray = (images * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    images = (mean_gray + factor() * (images - mean_gray)).clamp(0, 1)
    gray = (images * weights).sum(1, keepdim=True)
    return (gray + factor() * (images - gray)).clamp(0, 1)


def cutout(images: torch.Tensor, size: int) -> torch.Tensor:
    """A ``size`` x ``size`` square of each image set to 0, centred uniformly over the image and clipped at
    its borders (DeVries & Taylor, 2017). Applied after normalization, 0 is the mean colour."""
    if size == 0:
        return images
    batch, _, height, width = images.shape
    centre_y = torch.randint(0, height, (batch, 1, 1), device=images.device)
    centre_x = torch.randint(0, width, (batch, 1, 1), device=images.device)
    y = torch.arange(height, device=images.device)[None, :, None]
    x = torch.arange(width, device=images.device)[None, None, :]
    low, high = size // 2, size - size // 2
    inside = (y >= centre_y - low) & (y < centre_y + high) & (x >= centre_x - low) & (x < centre_x + high)
    return images.masked_fill(inside[:, None], 0.0)


class Cutout(torch.nn.Module):
    """:func:`cutout` for one image (C, H, W), to use in a per-sample v2 pipeline."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return cutout(image[None], self.size)[0]


class BatchAugmentation:
    """uint8 images (B, C, H, W) on any device -> augmented, normalized float32 images.

    Args:
        mean: per-channel mean in [0, 1] units.
        std: per-channel standard deviation in [0, 1] units.
        padding: pixels of zero padding for the random crop (0: no crop).
        flip: random horizontal flips.
        color_jitter: strength of brightness / contrast / saturation jitter (0: none).
        cutout: side of the cutout square in pixels (0: none).
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        padding: int = 0,
        flip: bool = False,
        color_jitter: float = 0.0,
        cutout: int = 0,
    ) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self.padding, self.flip, self.color_jitter, self.cutout = padding, flip, color_jitter, cutout

    def __call__(self, images: torch.Tensor, train: bool = True) -> torch.Tensor:
        if train:
            # Crop and flip move bytes only: done on uint8, before the float copy exists.
            images = random_crop(images, self.padding)
            if self.flip:
                images = random_flip(images)
        if train and self.color_jitter > 0:
            images = normalize(color_jitter(images.float() / 255, self.color_jitter), self.mean, self.std, scale=1.0)
        else:
            images = normalize(images, self.mean, self.std)
        return cutout(images, self.cutout) if train else images


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float], scale: float = 255.0) -> torch.Tensor:
    """``(images / scale - mean) / std`` per channel as one multiply-add (float32 out)."""
    shift, factor = _affine(tuple(mean), tuple(std), scale, images.device)
    return torch.addcmul(shift, images.float(), factor)


@functools.cache
def _affine(mean: tuple, std: tuple, scale: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Built once per device: a fresh host-to-GPU copy on every batch would make the CPU wait for the GPU.
    std_tensor = torch.tensor(std, device=device)[None, :, None, None]
    mean_tensor = torch.tensor(mean, device=device)[None, :, None, None]
    return -mean_tensor / std_tensor, 1.0 / (scale * std_tensor)


@functools.cache
def gray_weights(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 3, 1, 1) luma weights (ITU-R 601, as torchvision's grayscale) on ``device``, built once."""
    return torch.tensor([0.299, 0.587, 0.114], device=device, dtype=dtype)[None, :, None, None]


def per_sample_pipeline(
    mean: Sequence[float],
    std: Sequence[float],
    size: int,
    padding: int = 0,
    flip: bool = False,
    color_jitter: float = 0.0,
    cutout: int = 0,
    train: bool = True,
) -> v2.Compose:
    """The v2 per-sample equivalent of :class:`BatchAugmentation`, for uint8 (C, H, W) images."""
    steps: list[torch.nn.Module] = []
    if train and padding:
        steps.append(v2.RandomCrop(size, padding=padding))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if train and color_jitter > 0:
        steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
    steps.append(v2.Normalize(mean, std))
    if train and cutout:
        steps.append(Cutout(cutout))
    return v2.Compose(steps)
