"""``lit depths``: the same MLP family trained at several depths, to tell model bias from optimization trouble.

A deeper MLP of the same width can represent every function a shallower one can (its extra layers can pass their
input through), so with enough optimization its training loss is at most the shallower one's. A deeper model that
fits the training data worse is therefore not short of capacity (bias): its optimizer did not find what exists
(vanishing gradients, a learning rate tuned for the shallow net, too few epochs). The study flags each such depth.

The training loss compared is the epoch's ``train/loss``: the mean over the epoch's batches, in training mode
(dropout active), while the weights move; its minimum over the epochs stands for how well the model fits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonargparse import Namespace

from lit_mlcourse.callbacks.epoch_record import EpochRecord
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.studies.tables import format_table, shown, write_csv
from lit_mlcourse.studies.variant_runs import (
    add_callback,
    callback_of,
    check_settings,
    first_config_name,
    fit_variant,
)

if TYPE_CHECKING:
    from lit_mlcourse.cli import LitCLI


def run_depth_study(cli: LitCLI, depths: list[int], tolerance: float) -> list[dict[str, Any]]:
    """Fit the config with ``hidden = [w] * d`` for each ``d`` of ``depths`` into ``<run folder>/depth_<d>``; write
    ``depths.csv``, ``depths.txt`` and ``depths.png`` in the run folder and print the table and the flags."""
    base = cli.run_config
    check_settings("--depths", depths, "depth", "--depths '[1, 2, 4, 8]'")
    if not tolerance >= 0:
        raise ConfigValueError(f"--tolerance {tolerance}: give a relative tolerance >= 0, e.g. --tolerance 0.01 (1%).")
    key, width = hidden_width(base)
    run_dir = Path(cli.run_dir)
    rows = []
    for depth in sorted(depths):
        config = base.clone()
        config[key] = [width] * depth
        add_callback(config, "lit_mlcourse.callbacks.epoch_record.EpochRecord")
        trainer, _ = fit_variant(cli, config, run_dir / f"depth_{depth}")
        parameters = sum(parameter.numel() for parameter in cli.model.parameters())
        rows.append({"depth": depth, "hidden": f"{width}x{depth}", "parameters": parameters,
                     **best_losses(callback_of(trainer, EpochRecord).epochs)})  # fmt: skip
        row = rows[-1]
        print(
            f"depth_{depth}: {parameters} parameters, best train/loss {shown(row['best_train_loss'])} "
            f"(epoch {row['best_train_epoch']}), best val/loss {shown(row['best_val_loss'])} "
            f"(epoch {row['best_val_epoch']})",
            flush=True,
        )
    flags = optimization_flags(rows, tolerance)
    if cli.trainer.is_global_zero:
        report = depth_report(base, key, rows, flags, tolerance)
        write_csv(run_dir / "depths.csv", rows)
        (run_dir / "depths.txt").write_text(report + "\n")
        plot_depths(rows, run_dir / "depths.png")
        print(f"{report}\n{run_dir / 'depths.csv'}, {run_dir / 'depths.txt'}, {run_dir / 'depths.png'}", flush=True)
    return rows


def hidden_width(config: Namespace) -> tuple[str, int]:
    """The config key of the model's list of hidden layer widths (``model.init_args.hidden``, or a nested network's)
    and its first width, which every depth repeats."""
    found = list(_hidden_entries(config.model, "model"))
    lists = [(key, value) for key, value in found if isinstance(value, (list, tuple))]
    source = first_config_name(config)
    if not lists:
        model = config.model.class_path.rsplit(".", 1)[-1]
        net = config.model.get("init_args", Namespace()).get("net")
        if isinstance(net, Namespace) and net.get("class_path"):
            model += f" (net {net.class_path.rsplit('.', 1)[-1]})"
        other = f"; {found[0][0]} is {found[0][1]!r}, one width, not a list of layers" if found else ""
        raise ConfigValueError(
            f"{source}: {model} has no list of hidden layer widths (model.init_args.hidden){other}. `lit depths` "
            "repeats an MLP's hidden layer d times: use a config whose model takes `hidden`, such as "
            "configs/pm25_mlp.yaml (lit_mlcourse.models.Regressor)."
        )
    key, hidden = lists[0]
    if not hidden:
        raise ConfigValueError(
            f"{source}: {key} is [] (no hidden layer, a linear model): give the width to repeat, e.g. --{key} '[64]'."
        )
    return key, int(hidden[0])


def _hidden_entries(node: Any, prefix: str):
    """(dotted key, value) of every ``hidden`` argument in a parsed model config."""
    if not isinstance(node, Namespace):
        return
    for key, value in vars(node).items():
        if key == "hidden":
            yield f"{prefix}.{key}", value
        else:
            yield from _hidden_entries(value, f"{prefix}.{key}")


def best_losses(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """The lowest epoch ``train/loss`` and ``val/loss`` of a run and the (0-based) epochs they occurred at."""
    result: dict[str, Any] = {}
    for stage in ("train", "val"):
        scored = [(epoch[f"{stage}/loss"], epoch["epoch"]) for epoch in epochs if f"{stage}/loss" in epoch]
        loss, epoch = min(scored) if scored else (None, None)
        result[f"best_{stage}_loss"], result[f"best_{stage}_epoch"] = loss, epoch
    return result


def optimization_flags(rows: list[dict[str, Any]], tolerance: float = 0.0) -> list[str]:
    """One line per depth whose best training loss is worse than a shallower depth's by more than ``tolerance``
    (relative): compared with the shallower depth that fits best. ``rows``: ``depth`` and ``best_train_loss``."""
    flags = []
    ordered = sorted((row for row in rows if row["best_train_loss"] is not None), key=lambda row: row["depth"])
    for index, row in enumerate(ordered):
        if index == 0:
            continue
        shallower = min(ordered[:index], key=lambda other: other["best_train_loss"])
        loss, reference = row["best_train_loss"], shallower["best_train_loss"]
        if loss > reference + tolerance * abs(reference):
            flags.append(
                f"depth {row['depth']}: fits the training data worse than depth {shallower['depth']} "
                f"(train loss {loss:.4g} > {reference:.4g}): an optimization issue, not model bias"
            )
    return flags


def depth_report(config: Namespace, key: str, rows: list[dict[str, Any]], flags: list[str], tolerance: float) -> str:
    """The table, the flags and how to read them, as text."""
    lines = [f"lit depths {config.name}: {key} = [width] * depth; best losses over the epochs (epochs from 0)",
             format_table(rows), ""]  # fmt: skip
    if flags:
        lines += ["Flags (a deeper model fits the training data worse than a shallower one):", *flags]
    else:
        margin = f"by more than {tolerance:.1%}"
        lines.append(f"No flags: no deeper model fits the training data worse than a shallower one ({margin}).")
    lines += [
        "",
        "How to read it: a deeper model can represent whatever a shallower one can, so its best train loss should be",
        "no higher. Falling train loss with depth is the capacity at work (less bias); falling train loss with rising",
        "val loss is overfitting (variance); a flag means the optimizer, not the model family, is the limit.",
    ]
    layers = key.rsplit(".", 1)[0]  # the arguments beside `hidden`: the MLP's dropout is among them
    dropout = config[layers].get("dropout")
    if isinstance(dropout, (int, float)) and dropout > 0:
        lines.append(
            f"train/loss is measured in training mode, with dropout {dropout:g} after every hidden layer: deeper\n"
            "models drop more, which raises their train loss too. For optimization alone, rerun with "
            f"--{layers}.dropout 0."
        )
    return "\n".join(lines)


def plot_depths(rows: list[dict[str, Any]], path: Path) -> None:
    """Best train and val loss against the depth."""
    from matplotlib.figure import Figure  # no pyplot: renders without a display, whatever the backend

    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    depths = [row["depth"] for row in rows]
    for stage in ("train", "val"):
        points = [(row["depth"], row[f"best_{stage}_loss"]) for row in rows if row[f"best_{stage}_loss"] is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"best {stage} loss")
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths, [str(depth) for depth in depths])
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    figure.savefig(path, dpi=100)
