import pytest
import torch

from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.nets import DCGANDiscriminator, DCGANGenerator


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 64, 64)])
def test_generator_and_discriminator_fit_any_power_of_two_side(shape):
    torch.manual_seed(0)
    generator, discriminator = DCGANGenerator(shape, latent_dim=16, width=8), DCGANDiscriminator(shape, width=8)
    images = generator(torch.randn(5, 16))
    assert images.shape == (5, *shape) and images.abs().max() <= 1  # tanh output
    logits = discriminator(images)
    assert logits.shape == (5,)
    logits.sum().backward()
    for name, parameter in (*generator.named_parameters(), *discriminator.named_parameters()):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 28, 28), (3, 32, 16)])
def test_other_image_sizes_are_refused_naming_the_size(shape):
    with pytest.raises(ConfigValueError, match=rf"the data gives {shape[1]}x{shape[2]}"):
        DCGANGenerator(shape)


def test_weights_start_as_in_the_dcgan_paper():
    torch.manual_seed(0)
    generator = DCGANGenerator((3, 32, 32), latent_dim=100, width=64)
    convolutions = torch.cat(
        [m.weight.flatten() for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    )
    norms = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(convolutions.mean()) < 1e-3 and abs(convolutions.std() - 0.02) < 1e-3
    assert abs(norms.mean() - 1) < 5e-3 and abs(norms.std() - 0.02) < 5e-3
