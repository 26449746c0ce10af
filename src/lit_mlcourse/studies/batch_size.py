"""``lit batch-sizes``: the same config trained at several batch sizes, with the learning rate scaled by a rule, to
see what a bigger batch buys (time per epoch) and costs (updates per epoch, generalization, sharper minima).

Every run starts from the same seed and trains the same number of epochs, so each sees the same samples the same
number of times; a bigger batch makes fewer, less noisy updates. The learning rate follows one rule relative to the
config's batch size b0 and rate lr0: ``none`` keeps lr0; ``linear`` is lr0 * b / b0 (the rule for SGD, Goyal et al.
2017, "Accurate, Large Minibatch SGD": "When the minibatch size is multiplied by k, multiply the learning rate by
k"); ``sqrt`` is lr0 * sqrt(b / b0) (the rule for Adam, Malladi et al. 2022, "On the SDEs and Scaling Rules for
Adaptive Gradient Algorithms").
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lit_mlcourse.callbacks.epoch_record import EpochRecord
from lit_mlcourse.callbacks.hessian import HessianEigenvalues
from lit_mlcourse.config_checks import import_class, optimizer_entries
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.studies.tables import format_table, shown, write_csv
from lit_mlcourse.studies.variant_runs import (
    add_callback,
    callback_of,
    check_settings,
    first_config_name,
    fit_variant,
)
from lit_mlcourse.summary import as_float

if TYPE_CHECKING:
    from jsonargparse import Namespace

    from lit_mlcourse.cli import LitCLI

# A plain string option rather than a Literal: a wrong rule gets this module's message, which says what each does.
LR_SCALINGS: tuple[str, ...] = ("none", "linear", "sqrt")
# Batches the sharpness is measured on, at the config's own batch size: the same amount of training data for every
# batch size, so that the estimates differ by the weights reached, not by how many samples they were averaged over.
HESSIAN_BATCHES = 4


def scaled_lr(lr: float, batch_size: int, base_batch_size: int, rule: str) -> float:
    """The learning rate for ``batch_size`` under ``rule``, given ``lr`` at ``base_batch_size``."""
    ratio = batch_size / base_batch_size
    return lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


def run_batch_size_study(cli: LitCLI, sizes: list[int], lr_scaling: str) -> list[dict[str, Any]]:
    """Fit the config at each of ``sizes`` into ``<run folder>/batch_<b>``; write ``batch_sizes.csv`` and
    ``batch_sizes.png`` in the run folder and print the table."""
    base = cli.run_config
    check_settings("--sizes", sizes, "batch size", "--sizes '[8, 32, 128, 512]'")
    if lr_scaling not in LR_SCALINGS:
        raise ConfigValueError(
            f"--lr_scaling {lr_scaling}: unknown rule; use one of {', '.join(LR_SCALINGS)} (none: the same learning "
            "rate for every batch size; linear: lr * b / b0; sqrt: lr * sqrt(b / b0))."
        )
    no_hessian = getattr(import_class(base.model.class_path), "hessian_not_applicable", None)
    if no_hessian:  # refused here, before any run, rather than at the first run's setup
        raise ConfigValueError(
            f"{first_config_name(base)}: `lit batch-sizes` reports each batch size's sharpness (the largest "
            f"eigenvalue of the training loss's Hessian), which does not apply to {base.model.class_path}: {no_hessian}"
        )
    base_size = base.data.init_args.get("batch_size")
    if not isinstance(base_size, int):
        raise ConfigValueError(
            f"{first_config_name(base)}: {base.data.class_path.rsplit('.', 1)[-1]} has no data.init_args.batch_size: "
            "`lit batch-sizes` varies the batch size of a DataModule that takes one."
        )
    base_size = int(base_size)  # a plain int: jsonargparse's PositiveInt does not dump to YAML
    rates = _base_rates(base, lr_scaling)
    metric = task_metric(base)
    run_dir = Path(cli.run_dir)
    rows = []
    for size in sorted(sizes):
        config = base.clone()
        config.data.init_args.batch_size = int(size)
        for key, init_args in optimizer_entries(config):
            init_args.lr = scaled_lr(rates[key], size, base_size, lr_scaling)
        add_callback(config, "lit_mlcourse.callbacks.epoch_record.EpochRecord")
        add_callback(
            config, "lit_mlcourse.callbacks.HessianEigenvalues", at_end=True, num_batches=HESSIAN_BATCHES,
            batch_size=base_size,
        )  # fmt: skip
        trainer, _ = fit_variant(cli, config, run_dir / f"batch_{size}")
        row = _row(size, config, trainer, metric)
        rows.append(row)
        print(
            f"batch_{size}: lr {shown(row['lr'])}, {shown(row['epoch_s'])} s/epoch, {shown(row['update_ms'])} "
            f"ms/update, val/{metric} {shown(row[f'val_{metric}'])}, sharpness {shown(row['sharpness'])}",
            flush=True,
        )
    if cli.trainer.is_global_zero:
        write_csv(run_dir / "batch_sizes.csv", rows)
        plot_batch_sizes(rows, metric, lr_scaling, run_dir / "batch_sizes.png")
        title = f"lit batch-sizes {base.name}: lr scaling {lr_scaling} from batch {base_size}"
        files = f"{run_dir / 'batch_sizes.csv'}, {run_dir / 'batch_sizes.png'}"
        print(f"{title}\n{format_table(rows)}\n{files}", flush=True)
    return rows


def _base_rates(config: Namespace, lr_scaling: str) -> dict[str, float]:
    """The configured learning rate of each optimizer, by its config key: the rates the rule scales."""
    rates = {key: init_args.get("lr") for key, init_args in optimizer_entries(config)}
    if lr_scaling != "none" and (not rates or not all(isinstance(lr, (int, float)) for lr in rates.values())):
        raise ConfigValueError(
            f"--lr_scaling {lr_scaling}: {first_config_name(config)} sets no learning rate to scale (a torch.optim "
            "class with init_args.lr at model.init_args.optimizer): set one, e.g. --optimizer AdamW "
            "--optimizer.lr 0.001, or keep the rate fixed with --lr_scaling none."
        )
    return rates


def task_metric(config: Namespace) -> str:
    """The name (after ``val/``) of the metric the table reports beside the loss: the config's checkpoint monitor,
    or the task's own metric when the monitor is the loss (the quick start picks its checkpoint by val/loss)."""
    name = str(config.checkpoint.monitor or "").split("/", 1)[-1]
    if name in ("", "loss"):
        name = str(getattr(import_class(config.model.class_path), "monitor", "val/loss")).split("/", 1)[-1]
    return name


def _row(size: int, config: Namespace, trainer: Any, metric: str) -> dict[str, Any]:
    epochs = callback_of(trainer, EpochRecord).epochs
    # The median epoch: the first one pays for warm-up (allocations, caches), and a shared machine adds spikes.
    epoch_s = statistics.median(epoch["seconds"] for epoch in epochs) if epochs else None
    update_ms = statistics.median(1000 * e["seconds"] / e["steps"] for e in epochs if e["steps"]) if epochs else None
    hessian = callback_of(trainer, HessianEigenvalues).results
    metrics = trainer.callback_metrics
    lrs = [init_args.lr for _, init_args in optimizer_entries(config)]
    return {
        "batch_size": size,
        "lr": lrs[0] if len(lrs) == 1 else None,
        "epochs": len(epochs),
        "steps_per_epoch": epochs[-1]["steps"] if epochs else None,
        "epoch_s": epoch_s,
        "update_ms": update_ms,
        "train_loss": as_float(metrics.get("train/loss")),
        f"train_{metric}": as_float(metrics.get(f"train/{metric}")),
        "val_loss": as_float(metrics.get("val/loss")),
        f"val_{metric}": as_float(metrics.get(f"val/{metric}")),
        "sharpness": float(hessian[-1]["max_eig"]) if hessian else None,
    }


def plot_batch_sizes(rows: list[dict[str, Any]], metric: str, lr_scaling: str, path: Path) -> None:
    """Six panels against the batch size (log scale): time per epoch, time per update, the learning rate used;
    final train and val loss, final train and val metric, sharpness."""
    from matplotlib.figure import Figure  # no pyplot: renders without a display, whatever the backend

    sizes = [row["batch_size"] for row in rows]
    figure = Figure(figsize=(13, 7), layout="constrained")
    axes = figure.subplots(2, 3)
    panels = [
        (axes[0, 0], "training time per epoch (s)", [("epoch_s", None)]),
        (axes[0, 1], "time per update (ms)", [("update_ms", None)]),
        (axes[0, 2], f"learning rate (scaling: {lr_scaling})", [("lr", None)]),
        (axes[1, 0], "final loss", [("train_loss", "train"), ("val_loss", "val")]),
        (axes[1, 1], f"final {metric}", [(f"train_{metric}", "train"), (f"val_{metric}", "val")]),
        (axes[1, 2], "sharpness (largest Hessian eigenvalue)", [("sharpness", None)]),
    ]
    for ax, title, series in panels:
        for column, label in series:
            points = [(size, row[column]) for size, row in zip(sizes, rows, strict=True) if row.get(column) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.set_xlabel("batch size")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if any(label for _, label in series):
            ax.legend()
    for ax in (axes[0, 0], axes[0, 1]):
        ax.set_yscale("log")  # time per epoch falls and time per update rises, by orders of magnitude
    figure.savefig(path, dpi=100)
