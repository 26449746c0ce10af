import pytest
import torch
from torchvision.transforms import v2

from lit_mlcourse.data.views import BatchViews, TwoViews, random_resized_crop, simclr_view


@pytest.mark.parametrize(
    ("shape", "options"), [((1, 8, 8), {"min_scale": 0.5, "flip": False}), ((3, 32, 32), {"blur_probability": 0.5})]
)
def test_two_per_sample_views_differ_and_keep_the_shape(shape, options):
    torch.manual_seed(0)
    image = torch.randint(0, 256, shape, dtype=torch.uint8)
    view = simclr_view(shape[1], shape[0], (0.5,) * shape[0], (0.25,) * shape[0], **options)
    first, second = TwoViews(view)(image)
    assert first.shape == second.shape == shape and first.dtype == torch.float32
    assert torch.isfinite(first).all() and not torch.equal(first, second)


def test_batch_views_differ_and_are_normalized_float():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    first, second = BatchViews((0.5,) * 3, (0.25,) * 3)(images)
    assert first.shape == (16, 3, 32, 32) and first.dtype == torch.float32
    assert not torch.equal(first, second)
    assert first.min() >= -2 - 1e-5 and first.max() <= 2 + 1e-5  # [0, 1] before normalizing


def crop_areas(views: torch.Tensor) -> torch.Tensor:
    """Share of the image each view shows: channel 0 holds the x coordinate, channel 1 the y coordinate,
    both linear, so the crop's extent is the range of the values across the view (plus one pixel)."""
    side = views.shape[-1]
    width = views[:, 0, 0, -1] - views[:, 0, 0, 0]
    height = views[:, 1, -1, 0] - views[:, 1, 0, 0]
    return (width.abs() * (side - 1) / side + 1 / side) * (height * (side - 1) / side + 1 / side)


def test_batch_crops_draw_the_areas_torchvision_draws():
    torch.manual_seed(0)
    side, count, min_scale = 32, 4000, 0.2
    ramp = (torch.arange(side) + 0.5) / side
    image = torch.stack([ramp.expand(side, side), ramp[:, None].expand(side, side), torch.zeros(side, side)])
    batch_areas = crop_areas(random_resized_crop(image.expand(count, 3, side, side), min_scale))
    reference = v2.RandomResizedCrop(side, scale=(min_scale, 1.0), antialias=True)
    sample_areas = crop_areas(torch.stack([reference(image) for _ in range(count)]))
    for areas in (batch_areas, sample_areas):
        assert areas.min() > min_scale - 0.05 and areas.max() < 1.0 + 1e-4
    # Uniform in [0.2, 1] would average 0.6; redraws of crops that do not fit lower it a little.
    assert abs(batch_areas.mean() - sample_areas.mean()) < 0.02
    assert abs(batch_areas.std() - sample_areas.std()) < 0.02


def test_batch_flips_mirror_half_of_the_crops():
    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 16).expand(1, 16, 16)
    views = random_resized_crop(ramp.expand(2000, 1, 16, 16).contiguous(), 0.5, flip=True)
    mirrored = (views[:, 0, 0, -1] < views[:, 0, 0, 0]).float().mean()
    assert abs(mirrored - 0.5) < 4 * (0.25 / 2000) ** 0.5
