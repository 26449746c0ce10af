"""A generative model's samples from its fixed noise, as an image grid in the run folder and in every logger
that takes images: the same noise every time, so the grids show training progress."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_mlcourse.callbacks.figures import publish_image
from lit_mlcourse.callbacks.submission import in_run_folder


class SampleGrid(Callback):
    """Draws ``pl_module(pl_module.fixed_noise)`` (images in ``[0, 1]``) every ``every_n_batches`` training
    batches and at the end of fit: ``samples/batch_<N>.png`` and ``samples/final.png`` in the run folder, and
    ``samples`` in TensorBoard or wandb.

    Args:
        every_n_batches: training batches between two grids (0: only the final grid).
    """

    def __init__(self, every_n_batches: int = 500) -> None:
        self.every_n_batches = every_n_batches
        self.batches = 0
        self.written: list[Path] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self.batches += 1
        if self.every_n_batches and self.batches % self.every_n_batches == 0:
            self._draw(trainer, pl_module, f"batch_{self.batches:07d}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw(trainer, pl_module, "final")

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, name: str) -> None:
        import torchvision

        # Every process asks for the path: trainer.log_dir is a collective call under DDP.
        path = in_run_folder(trainer, f"samples/{name}.png")
        if not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            images = pl_module(pl_module.fixed_noise).clamp(0, 1).float().cpu()
        pl_module.train(was_training)
        grid = torchvision.utils.make_grid(images, nrow=int(len(images) ** 0.5), padding=1, pad_value=1.0)
        publish_image(trainer, grid, path, "samples")
        self.written.append(path)


class GeneratedImageWriter(Callback):
    """``lit predict`` for a generative model: ``num_images`` samples (``pl_module.sample(count, seed)``, images
    in ``[0, 1]``) as ``<folder>/000000.png ...`` and one ``<folder>/images.npz`` (``images``: uint8
    ``(N, H, W, C)``) in the run folder. Under DDP each process writes its own share (file names never clash).

    Args:
        num_images: how many images to generate.
        folder: where, relative to the run folder (or absolute).
        seed: seed of the noise, so that a prediction can be repeated.
    """

    def __init__(self, num_images: int = 1000, folder: str = "generated", seed: int = 0) -> None:
        self.num_images, self.folder, self.seed = num_images, folder, seed
        self.written: Path | None = None

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import numpy as np
        import torchvision

        folder = in_run_folder(trainer, f"{self.folder}/images.npz").parent
        rank, world = trainer.global_rank, trainer.world_size
        indices = range(rank, self.num_images, world)  # this process's share, numbered globally
        images = pl_module.sample(len(indices), seed=self.seed + rank).cpu()
        for index, image in zip(indices, images, strict=True):
            torchvision.utils.save_image(image, folder / f"{index:06d}.png")
        pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        name = "images.npz" if world == 1 else f"images_rank{rank}.npz"
        np.savez_compressed(folder / name, images=pixels, index=np.array(list(indices)))
        self.written = folder
        if trainer.is_global_zero:
            print(f"wrote {self.num_images} generated images to {folder}")
