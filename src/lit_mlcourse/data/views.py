"""SimCLR's two views of each image, per sample (torchvision.transforms.v2, in DataLoader workers) and
batch-wise on the device (for data that stays on the accelerator).

SimCLR (Chen et al., 2020, appendix A): random resized crop with flip, colour distortion (jitter with
probability 0.8, grayscale with probability 0.2) and optional Gaussian blur. Both forms sample the crop as
torchvision does: an area share uniform in ``[min_scale, 1]`` and a log aspect ratio uniform in
``[log 3/4, log 4/3]``; a crop that does not fit is redrawn, up to 10 times, then the whole image is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms import v2

from lit_mlcourse.data.transforms import color_jitter, gray_weights, normalize
from lit_mlcourse.errors import ConfigValueError


class ViewOptions(TypedDict, total=False):
    """What a DataModule's ``views`` may set (any subset; the rest keep :func:`simclr_view`'s defaults).
    For 8x8 digits: ``{min_scale: 0.5, flip: false}`` (a crop keeps at least half of the image, and a
    mirrored 2 or 5 is another shape)."""

    min_scale: float
    flip: bool
    jitter: float
    jitter_probability: float
    grayscale_probability: float
    blur_probability: float


def check_views(views: ViewOptions | None, label_fraction: float = 1.0) -> dict | None:
    """``views`` as a plain dict (checkpoint hyperparameters stay safe to load), its values checked."""
    if views is None:
        return None
    if label_fraction < 1:
        raise ConfigValueError(
            f"data.label_fraction={label_fraction} with data.views: SimCLR pretrains on every training image, "
            "labelled or not; label_fraction is for the fine-tune. Remove one of the two."
        )
    views = dict(views)
    for key in ("jitter_probability", "grayscale_probability", "blur_probability"):
        if not 0.0 <= views.get(key, 0.0) <= 1.0:
            raise ConfigValueError(f"data.views.{key}={views[key]} is a probability: give a value in [0, 1].")
    if not 0.0 < views.get("min_scale", 0.08) <= 1.0:
        raise ConfigValueError(
            f"data.views.min_scale={views['min_scale']} must be in (0, 1]: the share of the area a crop keeps."
        )
    if views.get("jitter", 0.0) < 0:
        raise ConfigValueError(f"data.views.jitter={views['jitter']} must be >= 0.")
    return views


def simclr_view(
    size: int,
    channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    min_scale: float = 0.08,
    flip: bool = True,
    jitter: float = 0.4,
    jitter_probability: float = 0.8,
    grayscale_probability: float = 0.2,
    blur_probability: float = 0.0,
) -> v2.Compose:
    """One random view of a uint8 (C, H, W) image, as normalized float32 (C, size, size)."""
    steps: list[Callable] = [v2.RandomResizedCrop(size, scale=(min_scale, 1.0), antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if jitter > 0:
        # Saturation and hue need colour; a gray image gets brightness and contrast only.
        colour = v2.ColorJitter(jitter, jitter, jitter, jitter / 4) if channels == 3 else v2.ColorJitter(jitter, jitter)
        steps.append(v2.RandomApply([colour], p=jitter_probability))
    if grayscale_probability > 0 and channels == 3:
        steps.append(v2.RandomGrayscale(grayscale_probability))
    if blur_probability > 0:
        kernel = max(3, (size // 10) | 1)  # ~10% of the side, odd, as in the paper
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_probability))
    steps.append(v2.Normalize(mean, std))
    return v2.Compose(steps)


class TwoViews:
    """``image -> (view(image), view(image))``: two independent draws of the same random view."""

    def __init__(self, view: Callable) -> None:
        self.view = view

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(image), self.view(image)


class ViewPairs(Dataset):
    """``dataset``'s ``(image, label)`` samples as ``((view 1, view 2), label)``: SimCLR's training set.
    The labels stay for the online linear probe."""

    def __init__(self, dataset: Dataset, views: TwoViews) -> None:
        self.dataset, self.views = dataset, views

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        image, label = self.dataset[index]
        return self.views(image), label


def random_resized_crop(images: torch.Tensor, min_scale: float, flip: bool = False) -> torch.Tensor:
    """Each image of a float batch (B, C, H, W) cropped as ``v2.RandomResizedCrop`` draws it and resampled
    (bilinear) to H x W, mirrored with probability 0.5 when ``flip``; one ``grid_sample`` for the batch."""
    batch, device = images.shape[0], images.device
    attempts = 10
    area = torch.empty(batch, attempts, device=device).uniform_(min_scale, 1.0)
    log_ratio = torch.empty(batch, attempts, device=device).uniform_(math.log(3 / 4), math.log(4 / 3))
    width, height = torch.sqrt(area * log_ratio.exp()), torch.sqrt(area / log_ratio.exp())  # shares of the side
    fits = (width <= 1) & (height <= 1)
    first = torch.where(fits.any(1), fits.float().argmax(1), 0)  # the first crop that fits
    width = torch.where(fits.any(1), width.gather(1, first[:, None])[:, 0], 1.0)  # else the whole image
    height = torch.where(fits.any(1), height.gather(1, first[:, None])[:, 0], 1.0)
    # Centres uniform over the positions where the crop fits, in grid coordinates [-1, 1].
    centre_x = (1 - width) * (2 * torch.rand(batch, device=device) - 1)
    centre_y = (1 - height) * (2 * torch.rand(batch, device=device) - 1)
    mirror = torch.where(torch.rand(batch, device=device) < 0.5, -1.0, 1.0) if flip else 1.0
    theta = torch.zeros(batch, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class BatchViews:
    """uint8 images (B, C, H, W) on any device -> two views, each as :func:`simclr_view` draws them
    (without blur), normalized float32.

    Args: as :func:`simclr_view`.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        min_scale: float = 0.08,
        flip: bool = True,
        jitter: float = 0.4,
        jitter_probability: float = 0.8,
        grayscale_probability: float = 0.2,
    ) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self.min_scale, self.flip, self.jitter = min_scale, flip, jitter
        self.jitter_probability, self.grayscale_probability = jitter_probability, grayscale_probability

    def view(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        views = random_resized_crop(images.float() / 255, self.min_scale, self.flip)  # (B, C, H, W) in [0, 1]
        if self.jitter > 0:
            chosen = torch.rand(batch, 1, 1, 1, device=images.device) < self.jitter_probability
            views = torch.where(chosen, color_jitter(views, self.jitter), views)
        if self.grayscale_probability > 0 and views.shape[1] == 3:
            gray = (views * gray_weights(views.device, views.dtype)).sum(1, keepdim=True)  # (B, 1, H, W)
            chosen = torch.rand(batch, 1, 1, 1, device=images.device) < self.grayscale_probability
            views = torch.where(chosen, gray.expand_as(views), views)
        return normalize(views, self.mean, self.std, scale=1.0)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(images), self.view(images)
