"""Why is my training stuck? The loss Hessian's extreme eigenvalues, at chosen epochs and at the end of training."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, IterableDataset

from lit_mlcourse.curvature import LossCurvature, critical_point_verdict, lanczos_extremes
from lit_mlcourse.data.resumable import SeededSamples, sample_seed
from lit_mlcourse.errors import ConfigValueError

COLUMNS = ("epoch", "step", "max_eig", "min_eig", "ratio", "grad_norm", "verdict")


class HessianEigenvalues(Callback):
    """The largest (sharpness) and smallest eigenvalues of the training loss's Hessian over a fixed set of training
    batches, from Hessian-vector products (torch.func) and the Lanczos iteration (lit_mlcourse.curvature).

    After each epoch listed in ``epochs`` (counted from 1, as the progress line counts them) and, with ``at_end``,
    when training ends, it logs ``hessian/max_eig``, ``hessian/min_eig``, ``hessian/ratio`` (min / max),
    ``hessian/grad_norm`` and ``hessian/saddle`` (1 for a saddle point, 0 for a local minimum) to every logger,
    prints the verdict, and writes every evaluation to ``hessian.csv`` in the run folder (``.results`` holds them
    too). The verdict: a saddle point when the smallest eigenvalue is below ``-tolerance`` times the largest
    magnitude (there is a direction in which the loss goes down), else a local minimum; it speaks of a critical point,
    so read it with the gradient norm beside it.

    The loss is the task's training objective (``TaskModule.training_loss``) with the model as it evaluates
    (dropout off, batch norm with its running statistics): a fixed function of the weights, as Lanczos needs. The
    batches are ``num_batches`` of ``batch_size`` (default: the training loader's) samples drawn once, with ``seed``,
    from the training set (their augmentation fixed too), the same at every evaluation and in every process.
    ``iterations`` Lanczos steps keep ``iterations`` float64 vectors of the model's size. The GAN is refused: a
    two-player game has no single loss whose Hessian tells minima from saddles (see ``GAN.hessian_not_applicable``).
    """

    def __init__(
        self,
        epochs: list[int] | None = None,
        at_end: bool = True,
        num_batches: int = 4,
        batch_size: int | None = None,
        iterations: int = 20,
        tolerance: float = 1e-3,
        seed: int = 0,
    ) -> None:
        for name, value, least in (("num_batches", num_batches, 1), ("iterations", iterations, 1)):
            if value < least:
                raise ConfigValueError(f"HessianEigenvalues: {name}={value}; give an integer >= {least}.")
        if batch_size is not None and batch_size < 1:
            raise ConfigValueError(f"HessianEigenvalues: batch_size={batch_size}; give an integer >= 1 or null.")
        if not tolerance >= 0:
            raise ConfigValueError(f"HessianEigenvalues: tolerance={tolerance}; give a number >= 0 (say 1e-3).")
        if any(epoch < 1 for epoch in epochs or []):
            raise ConfigValueError(f"HessianEigenvalues: epochs={epochs}; epochs count from 1, as the progress line.")
        self.epochs = sorted(set(epochs or []))
        self.at_end = at_end
        self.num_batches = num_batches
        self.batch_size = batch_size
        self.iterations = iterations
        self.tolerance = tolerance
        self.seed = seed
        self.results: list[dict[str, Any]] = []
        self._batches: list[Any] | None = None

    @property
    def state_key(self) -> str:
        # Two of them (a config's and lit batch-sizes' own) may sit in one trainer: each keeps its own results.
        return self._generate_state_key(
            epochs=self.epochs, at_end=self.at_end, num_batches=self.num_batches, batch_size=self.batch_size,
            iterations=self.iterations, seed=self.seed,
        )  # fmt: skip

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        reason = getattr(pl_module, "hessian_not_applicable", None)
        if stage == "fit" and reason:
            raise ConfigValueError(f"HessianEigenvalues does not apply to {type(pl_module).__name__}: {reason}")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Checked before the first epoch, not found out after it: the fixed batches are drawn by index.
        loader = trainer.train_dataloader
        if not isinstance(loader, DataLoader):
            what = f"a {type(loader).__name__}"
        elif isinstance(loader.dataset, IterableDataset) or not hasattr(loader.dataset, "__len__"):
            kind = "an IterableDataset" if isinstance(loader.dataset, IterableDataset) else "a dataset without a length"
            what = f"a DataLoader over {type(loader.dataset).__name__}, {kind}"
        else:
            return
        raise ConfigValueError(
            f"HessianEigenvalues draws its fixed batches by index from the training DataLoader's dataset; this "
            f"run's train_dataloader() gives {what}. Use it with a DataModule whose train_dataloader() returns one "
            "DataLoader over a map-style dataset with a length (every DataModule of lit_mlcourse does)."
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 in self.epochs:
            self.evaluate(trainer, pl_module, trainer.current_epoch + 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end and not (self.results and self.results[-1]["step"] == trainer.global_step):
            self.evaluate(trainer, pl_module, trainer.fit_loop.epoch_progress.current.completed)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> dict[str, Any]:
        """Estimate, log, print and record the eigenvalues at the current weights, after ``epoch`` epochs."""
        batches = self._fixed_batches(trainer, pl_module)
        modes = {module: module.training for module in pl_module.modules()}
        pl_module.eval()
        try:
            with torch.enable_grad():
                result = self.estimate(pl_module, batches)
        finally:
            for module, training in modes.items():
                module.train(training)
        row = {"epoch": epoch, "step": trainer.global_step, **result}
        self.results.append(row)
        self._report(trainer, row)
        return row

    def estimate(self, pl_module: L.LightningModule, batches: list[Any]) -> dict[str, Any]:
        """The eigenvalues, their ratio, the gradient norm and the verdict of ``pl_module``'s training loss over
        ``batches`` (the model in the mode it is in)."""
        objective = _TrainingLoss(pl_module)
        parameters = {f"task.{name}": p for name, p in pl_module.named_parameters() if p.requires_grad}

        def loss_of(batch: Any):
            return lambda weights: functional_call(objective, weights, (batch,))

        curvature = LossCurvature([loss_of(batch) for batch in batches], parameters)
        generator = torch.Generator().manual_seed(self.seed)
        device = next(iter(parameters.values())).device
        extremes = lanczos_extremes(
            curvature.hessian_vector_product, curvature.size, self.iterations, generator, device
        )
        largest, smallest = extremes.largest, extremes.smallest
        return {
            "max_eig": largest,
            "min_eig": smallest,
            "ratio": smallest / largest if largest != 0 else float("nan"),
            "grad_norm": float(curvature.gradient().norm()),
            "verdict": critical_point_verdict(largest, smallest, self.tolerance),
        }

    def _fixed_batches(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[Any]:
        if self._batches is None:
            # Drawn with the callback's seed, the training streams left as they were: a DataModule's
            # on_after_batch_transfer (CIFAR-10 on the device) augments from the global generators.
            devices = [pl_module.device.index or 0] if pl_module.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                self._batches = self._draw_batches(trainer, pl_module)
        return self._batches

    def _draw_batches(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[Any]:
        loader = trainer.train_dataloader
        dataset, size = loader.dataset, self.batch_size or loader.batch_size or 64
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))
        chosen = [int(index) for index in order[: self.num_batches * size]]
        items = [self._item(dataset, index) for index in chosen]
        return [
            trainer.strategy.batch_to_device(loader.collate_fn(items[start : start + size]), pl_module.device)
            for start in range(0, len(items), size)
        ]

    def _item(self, dataset: Any, index: int) -> Any:
        if isinstance(dataset, SeededSamples):  # the augmentation of this index, fixed by the seed
            return dataset[(index, sample_seed(self.seed, 0, index))]
        with torch.random.fork_rng(devices=[]):  # whatever the dataset draws leaves training's RNG as it was
            torch.default_generator.manual_seed(sample_seed(self.seed, 0, index))
            return dataset[index]

    def _report(self, trainer: L.Trainer, row: dict[str, Any]) -> None:
        metrics = {f"hessian/{key}": float(row[key]) for key in ("max_eig", "min_eig", "ratio", "grad_norm")}
        metrics["hessian/saddle"] = float(row["verdict"] == "saddle point")
        trainer.callback_metrics.update({key: torch.tensor(value) for key, value in metrics.items()})
        rank_zero_info(
            f"hessian after epoch {row['epoch']} (step {row['step']}): largest eigenvalue {row['max_eig']:.4g}, "
            f"smallest {row['min_eig']:.4g} (ratio {row['ratio']:.3g}), gradient norm {row['grad_norm']:.3g}: "
            f"{row['verdict']}"
        )
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        path = Path(trainer.default_root_dir) / "hessian.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.results)

    def state_dict(self) -> dict[str, Any]:
        return {"results": self.results}  # a resumed run's hessian.csv keeps the evaluations before the checkpoint

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.results = list(state_dict.get("results", []))


class _TrainingLoss(nn.Module):
    """The task's training loss as a module's forward, for torch.func.functional_call (which calls forward)."""

    def __init__(self, task: L.LightningModule) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Any) -> torch.Tensor:
        return self.task.training_loss(batch)
