import lightning as L
import pytest
import torch
import torch.nn.functional as F

from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.models import GAN
from lit_mlcourse.models.gan import check_unit_range, discriminator_loss, ema_with_warmup, generator_loss
from lit_mlcourse.nets import DCGANDiscriminator, DCGANGenerator


@pytest.fixture
def judge(judge_checkpoint) -> str:
    return judge_checkpoint


def gan(judge: str, **kwargs) -> GAN:
    def generator(shape):
        return DCGANGenerator(shape, latent_dim=8, width=8)

    def discriminator(shape):
        return DCGANDiscriminator(shape, width=8)

    return GAN(generator, discriminator, image_shape=(1, 8, 8), judge=judge, **kwargs)


def test_losses_match_their_definitions():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.2, 1.0])
    sigmoid = torch.sigmoid
    expected = -(0.9 * sigmoid(real).log() + 0.1 * (1 - sigmoid(real)).log()).mean() - (1 - sigmoid(fake)).log().mean()
    torch.testing.assert_close(discriminator_loss(real, fake, "non_saturating", smoothing=0.1), expected)
    torch.testing.assert_close(generator_loss(fake, "non_saturating"), -sigmoid(fake).log().mean())
    torch.testing.assert_close(
        discriminator_loss(real, fake, "hinge"), F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    )
    torch.testing.assert_close(generator_loss(fake, "hinge"), -fake.mean())


def test_the_judge_is_required_and_must_fit_the_data(judge):
    with pytest.raises(ConfigValueError, match=r"model.judge is required"):
        gan(None)

    def generator(shape):
        return DCGANGenerator(shape, latent_dim=8, width=8)

    with pytest.raises(ConfigValueError, match=r"classifies images of shape \[1, 8, 8\], the data gives \[3, 32, 32\]"):
        GAN(generator, generator, image_shape=(3, 32, 32), judge=judge)


def test_standardized_data_is_refused():
    check_unit_range(torch.rand(4, 1, 8, 8))
    with pytest.raises(ConfigValueError, match=r"a training batch spans \[-2, 1\]"):
        check_unit_range(torch.tensor([-2.0, 1.0]))


def test_a_short_fit_scores_samples_and_keeps_the_fixed_noise_out_of_checkpoints(judge, tmp_path):
    torch.manual_seed(0)
    model = gan(judge, num_eval_samples=200, gradient_clip_val=1.0, ema_decay=0.9)
    assert "fixed_noise" not in model.state_dict() and model.fixed_noise.shape == (64, 8)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=5, default_root_dir=tmp_path, enable_progress_bar=False,
                        logger=False, enable_checkpointing=False)  # fmt: skip
    trainer.fit(model, DigitsDataModule(batch_size=32))
    metrics = trainer.callback_metrics
    assert {"train/d_loss", "train/g_loss", "val/fid", "val/is", "val/min_class_share"} <= set(metrics)
    assert metrics["val/fid"] > 0 and 1 <= metrics["val/is"] <= 10  # the judge has 10 classes
    averaged = dict(model.ema.module.named_parameters())
    assert any(not torch.equal(p, averaged[name]) for name, p in model.generator.named_parameters())
    images = model.sample(5, seed=0)
    assert images.shape == (5, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images, model.sample(5, seed=0))  # seeded samples repeat
    # Every evaluation scores the same noise: the same generator gets the same FID, so checkpoints differ by
    # their generators only.
    first = trainer.validate(model, DigitsDataModule(batch_size=32), verbose=False)[0]
    second = trainer.validate(model, DigitsDataModule(batch_size=32), verbose=False)[0]
    assert first["val/fid"] == second["val/fid"] and first["val/is"] == second["val/is"]


def test_the_ema_decay_warms_up_to_its_setting():
    from torch.optim.swa_utils import AveragedModel

    network = torch.nn.Linear(1, 1, bias=False)
    average = AveragedModel(network, multi_avg_fn=ema_with_warmup(0.9), use_buffers=True)
    expected = None
    for step in range(100):  # the warm-up reaches 0.9 at n = 80
        network.weight.data.fill_(float(step))
        average.update_parameters(network)
        if expected is None:  # the first update copies
            expected = float(step)
        else:  # n = updates before this one; the decay is (1 + n) / (10 + n) until it reaches 0.9
            rate = min(0.9, (1 + step) / (10 + step))
            expected = rate * expected + (1 - rate) * step
        assert float(average.module.weight) == pytest.approx(expected, rel=1e-6), step
