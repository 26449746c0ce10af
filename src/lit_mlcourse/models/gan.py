"""An unconditional GAN (DCGAN by default): a generator learns to fool a discriminator that learns not to be
fooled, judged without downloads: by a classifier this package trained, or by Inception-v3 from local weights."""

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import nn
from torch.optim.swa_utils import AveragedModel

from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.models.base import TaskModule
from lit_mlcourse.models.judges import JudgeFeatures, load_judge

# Builds a network for the image shape, e.g. lit_mlcourse.nets.DCGANGenerator with its other arguments.
ImageNetFactory = Callable[[Sequence[int]], nn.Module]


EVAL_SEED = 1000  # the evaluation noise's seed (the sample grids use 0)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str, smoothing: float = 0.0):
    """Non-saturating GAN (Goodfellow et al., 2014): cross-entropy with real = 1 - ``smoothing`` (one-sided
    label smoothing), fake = 0; or hinge (Lim & Ye, 2017): ``relu(1 - D(real)) + relu(1 + D(fake))``."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 1.0 - smoothing))
    return real + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Non-saturating: ``-log D(G(z))`` (strong gradients while D wins); hinge: ``-D(G(z))``."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class GAN(TaskModule):
    """A GAN trained with manual optimisation: one discriminator step per batch, one generator step every
    ``discriminator_steps`` batches.

    Data: images as floats in ``[0, 1]`` (scaled to ``[-1, 1]`` for the networks); labels are ignored. At each
    validation, ``num_eval_samples`` generated images (from the EMA generator when ``ema_decay`` is set) are
    scored by the judge against the validation images: ``val/fid`` (Fréchet distance in the judge's features;
    it picks the best checkpoint), ``val/is`` (Inception-style score with the judge's class probabilities, up
    to the number of classes) and, when the judge's classes are the data's, ``val/min_class_share`` (the rarest
    class among the judged samples: mode collapse shows here). The judge is named in the log at the start of
    every run: scores of different judges are different numbers.

    Args:
        generator: noise -> images network, e.g. ``lit_mlcourse.nets.DCGANGenerator`` (has ``latent_dim``).
        discriminator: images -> one logit each, e.g. ``lit_mlcourse.nets.DCGANDiscriminator``.
        image_shape: ``(channels, side, side)`` (linked from the DataModule).
        judge: ``best.ckpt`` of an image classifier of this package trained on the same images, or a local copy
            of the Inception-v3 weights FID is defined with (``pt_inception-2015-12-05-6726825d.pth``): the
            published FID and Inception Score (slow on a CPU: every image is resized to 299x299).
        judge_normalization: ``[mean, std]`` per channel that the judge's training data was standardized with
            (CIFAR-10: its channel statistics); ``None``: the judge saw images in [0, 1] (the digits).
        loss: ``non_saturating`` or ``hinge``.
        discriminator_steps: discriminator updates per generator update.
        label_smoothing: one-sided smoothing of the real label (non-saturating loss only).
        gradient_clip_val: clip each network's gradients to this value (``None``: no clipping). Lightning's
            ``trainer.gradient_clip_val`` does not apply to manual optimization (it raises); set there, it is
            moved here, with ``trainer.gradient_clip_algorithm``.
        gradient_clip_algorithm: ``norm`` (the gradients' total norm) or ``value`` (each element).
        ema_decay: exponential moving average of the generator's weights (``None``: off); the decay warms up
            from 0.1 (``ema_with_warmup``).
        num_eval_samples: generated images scored at each validation.
        num_fixed_samples: size of the fixed noise batch the sample grids are drawn from.
        generator_optimizer: default Adam, lr 2e-4, betas (0.5, 0.999), as in the DCGAN paper.
        discriminator_optimizer: the same default.
        num_classes: the data's classes (linked by `lit`; recorded with the run, the generator ignores labels).
        class_names: their names (linked by `lit`; recorded likewise).
    """

    monitor = "val/fid"
    monitor_mode = "min"
    hessian_not_applicable = (
        "a GAN is a two-player game, not the minimisation of one loss. Its generator and discriminator descend "
        "different losses, each moving the other's; training settles (or cycles) where neither can improve alone, "
        "which the eigenvalues of either loss's Hessian, the other player frozen, do not tell: that takes the game's "
        "Jacobian, whose eigenvalues are complex. Watch val/fid and the sample grids instead."
    )

    def __init__(
        self,
        generator: ImageNetFactory,
        discriminator: ImageNetFactory,
        image_shape: Sequence[int] = (1, 8, 8),
        judge: str | None = None,
        judge_normalization: list[list[float]] | None = None,
        loss: Literal["non_saturating", "hinge"] = "non_saturating",
        discriminator_steps: int = 1,
        label_smoothing: float = 0.0,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: Literal["norm", "value"] = "norm",
        ema_decay: float | None = 0.999,
        num_eval_samples: int = 2000,
        num_fixed_samples: int = 64,
        generator_optimizer: OptimizerCallable | None = None,
        discriminator_optimizer: OptimizerCallable | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__(generator_optimizer or dcgan_adam, None)
        if judge is None:
            raise ConfigValueError(
                "model.judge is required: the checkpoint of an image classifier trained on the same images scores "
                "the samples (e.g. `lit fit --config configs/quickstart.yaml`, then its checkpoints/best.ckpt), or "
                "the Inception-v3 weights pt_inception-2015-12-05-6726825d.pth as a local file."
            )
        if discriminator_steps < 1 or num_eval_samples < 2 or not 0 <= label_smoothing < 1:
            raise ConfigValueError(
                f"model.discriminator_steps={discriminator_steps} must be >= 1, model.num_eval_samples="
                f"{num_eval_samples} >= 2 and model.label_smoothing={label_smoothing} in [0, 1)."
            )
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ConfigValueError(f"model.ema_decay={ema_decay} must be in (0, 1), or null for no average.")
        self.save_hyperparameters(ignore=["generator_optimizer", "discriminator_optimizer"])
        self.automatic_optimization = False
        self.make_discriminator_optimizer = discriminator_optimizer or dcgan_adam
        self.generator = generator(image_shape)
        self.discriminator = discriminator(image_shape)
        self.ema = None
        if ema_decay is not None:
            self.ema = AveragedModel(self.generator, multi_avg_fn=ema_with_warmup(ema_decay), use_buffers=True)
            self.ema.requires_grad_(False)
        latent = torch.randn(num_fixed_samples, self.generator.latent_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("fixed_noise", latent, persistent=False)  # the sample grids' noise: same every run
        # Imported here: torchmetrics' image metrics (and scipy) cost start-up time every other task would pay.
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore

        self.judge = load_judge(judge, image_shape, judge_normalization)
        features = JudgeFeatures(self.judge)
        self.fid = FrechetInceptionDistance(features, input_img_size=tuple(image_shape), normalize=True)
        self.inception_score = InceptionScore(self.judge, splits=10)

    def adapt_trainer_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``trainer.gradient_clip_val`` becomes this model's: the GAN optimizes by hand, where Lightning refuses
        to clip ("Automatic gradient clipping is not supported for manual optimization")."""
        value = config.get("gradient_clip_val")
        if not value:  # None or 0: Lightning clips nothing either
            return config
        own = self.hparams.gradient_clip_val
        algorithm = config.get("gradient_clip_algorithm") or "norm"
        if own is not None and (own, self.hparams.gradient_clip_algorithm) != (value, algorithm):
            raise ConfigValueError(
                f"trainer.gradient_clip_val={value} (algorithm {algorithm}) and model.gradient_clip_val={own} "
                f"(algorithm {self.hparams.gradient_clip_algorithm}) disagree: the GAN clips its gradients itself, "
                "set one of the two."
            )
        self.hparams.gradient_clip_val, self.hparams.gradient_clip_algorithm = value, algorithm
        rank_zero_info(f"GAN: each network's gradients are clipped to {value} ({algorithm}), by the model")
        return {**config, "gradient_clip_val": None, "gradient_clip_algorithm": None}

    def on_fit_start(self) -> None:  # no metric collections to reset: the scores are computed by hand
        classes = f"{self.judge.num_classes} classes" if self.judge.num_classes else "not the data's classes"
        rank_zero_info(f"GAN judge: {self.judge.name} ({classes})")

    def on_train_epoch_end(self) -> None:
        pass  # the losses are logged per epoch by training_step

    def setup(self, stage: str) -> None:
        # The judge is frozen in eval mode on purpose: Lightning's warning about eval-mode modules would alarm
        # every GAN run for nothing.
        warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode", PossibleUserWarning)
        strategy = self.trainer.strategy
        # The discriminator's step leaves the generator without gradients and the other way round: DDP must look
        # for unused parameters (Lightning no longer does by default, and its own GAN example fails there).
        if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters"):
            strategy._ddp_kwargs["find_unused_parameters"] = True

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The generator's optimizer (`lit` builds it once early, so a bad argument fails before any run)."""
        self.make_discriminator_optimizer(self.discriminator.parameters())
        return self.make_optimizer(self.generator.parameters())

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.make_optimizer(self.generator.parameters()),
            self.make_discriminator_optimizer(self.discriminator.parameters()),
        ]

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator samples come from: its moving average when ``ema_decay`` is set."""
        return self.ema.module if self.ema is not None else self.generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, latent_dim) -> (B, C, H, W) in [0, 1]
        return (self.sampling_generator(z) + 1) / 2

    def sample(self, count: int, seed: int | None = None) -> torch.Tensor:
        """``count`` generated images in ``[0, 1]`` from the averaged generator, in eval mode."""
        return self.generate(self.latents(count, seed))

    def latents(self, count: int, seed: int | None = None) -> torch.Tensor:
        random = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        return torch.randn(count, self.generator.latent_dim, device=self.device, generator=random)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """The images of latents ``z``, in ``[0, 1]``, from the averaged generator in eval mode."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = (generator(z) + 1) / 2
        generator.train(was_training)
        return images.clamp(0, 1)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        if batch_idx == 0 and self.current_epoch == 0:
            check_unit_range(images)
        real = images * 2 - 1
        generator_opt, discriminator_opt = self.optimizers()
        kind = self.hparams.loss
        fake = self.generator(torch.randn(len(real), self.generator.latent_dim, device=self.device))

        # Each network's loss is computed with only its own parameters requiring gradients (toggled_optimizer).
        with self.toggled_optimizer(discriminator_opt):
            d_loss = discriminator_loss(
                self.discriminator(real), self.discriminator(fake.detach()), kind, self.hparams.label_smoothing
            )
            self._update(discriminator_opt, d_loss)
        self.log("train/d_loss", d_loss, on_step=False, on_epoch=True, batch_size=len(real), sync_dist=True)

        if (batch_idx + 1) % self.hparams.discriminator_steps == 0:
            with self.toggled_optimizer(generator_opt):
                g_loss = generator_loss(self.discriminator(fake), kind)
                self._update(generator_opt, g_loss)
            if self.ema is not None:
                self.ema.update_parameters(self.generator)
            self.log("train/g_loss", g_loss, on_step=False, on_epoch=True, batch_size=len(real), sync_dist=True)

    def _update(self, optimizer: Any, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss``, its gradients clipped to ``gradient_clip_val`` when set."""
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.hparams.gradient_clip_val is not None:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.hparams.gradient_clip_val,
                gradient_clip_algorithm=self.hparams.gradient_clip_algorithm,
            )
        optimizer.step()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.fid.update(batch[0] if isinstance(batch, (tuple, list)) else batch, real=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.fid.update(batch[0] if isinstance(batch, (tuple, list)) else batch, real=True)

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def _score(self, stage: str) -> None:
        """Judge ``num_eval_samples`` generated images against the real images of ``stage`` seen by the steps.
        Each process scores its share of the samples; the metrics' states are summed over processes."""
        classes = self.judge.num_classes
        counts = torch.zeros(classes or 1, device=self.device)
        # The same noise at every evaluation: epochs differ by their generator only, not by the luck of the draw,
        # so the best checkpoint by FID is picked on less noise. Every process draws all of it and takes its share,
        # so the scores do not depend on the number of processes.
        z = self.latents(self.hparams.num_eval_samples, seed=EVAL_SEED)[self.global_rank :: self.trainer.world_size]
        for chunk in self.generate(z).split(200):
            self.fid.update(chunk, real=False)
            self.inception_score.update(chunk)
            if classes:
                counts += torch.bincount(self.judge(chunk).argmax(1), minlength=classes)
        # The score shuffles the samples into its splits with the global random stream: seeded here, the same
        # samples get the same score, and the training's random stream is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            score, spread = self.inception_score.compute()
        scores = {f"{stage}/fid": self.fid.compute(), f"{stage}/is": score, f"{stage}/is_std": spread}
        if classes:
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
            scores[f"{stage}/min_class_share"] = counts.min() / counts.sum()
        self.log_dict(scores)
        self.fid.reset()
        self.inception_score.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> None:
        return None  # the images come from GeneratedImageWriter: their number is its setting, not the data's

    def default_callbacks(self, subcommand: str | None) -> list[Callback]:
        from lit_mlcourse.callbacks.samples import GeneratedImageWriter, SampleGrid

        return [GeneratedImageWriter()] if subcommand == "predict" else [SampleGrid()]


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """An exponential moving average whose decay grows as ``(1 + n) / (10 + n)`` up to ``decay`` (``n``: updates
    so far), as TensorFlow's ExponentialMovingAverage with ``num_updates``: with a fixed decay the average would
    drag the random initial weights along for about ``1 / (1 - decay)`` steps, and early samples would be noise."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        rate = min(decay, (1 + float(updates)) / (10 + float(updates)))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - rate)
        else:  # integer buffers (batch norm's num_batches_tracked)
            for average, value in zip(averaged, current, strict=True):
                average.copy_(average * rate + value * (1 - rate))

    return update


def dcgan_adam(params: Iterable[Any]) -> torch.optim.Optimizer:
    """The DCGAN paper's optimizer: Adam, lr 2e-4, betas (0.5, 0.999)."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


def check_unit_range(images: torch.Tensor) -> None:
    """The GAN scales its data from [0, 1] to the generator's [-1, 1]: standardized data would be silently
    wrong, so refuse it."""
    low, high = float(images.min()), float(images.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ConfigValueError(
            f"The GAN expects images in [0, 1]; a training batch spans [{low:.3g}, {high:.3g}]. Use a DataModule "
            "that serves unnormalized images (e.g. DigitsDataModule, or CIFAR10DataModule with normalize: false)."
        )
