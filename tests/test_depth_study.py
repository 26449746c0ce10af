"""`lit depths` through the `lit` command on the real PM2.5 data: one run per depth, the best losses read back from
each run's own metrics.csv, the parameter counts, the flags, and the refusals; the flagging rule on made-up
numbers."""

import csv
import json
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, run_lit

from lit_mlcourse.cli import main
from lit_mlcourse.studies.depth import best_losses, optimization_flags

WIDTH = 64  # configs/pm25_mlp.yaml: hidden: [64]
COLUMNS = ["depth", "hidden", "parameters", "best_train_loss", "best_train_epoch", "best_val_loss", "best_val_epoch"]


def rows(*losses: tuple[int, float]) -> list[dict]:
    return [{"depth": depth, "best_train_loss": loss} for depth, loss in losses]


def test_a_deeper_model_that_fits_worse_is_flagged_against_the_best_shallower_one():
    flags = optimization_flags(rows((8, 0.31), (1, 0.40), (2, 0.20), (4, 0.25)))  # any order
    assert flags == [
        "depth 4: fits the training data worse than depth 2 (train loss 0.25 > 0.2): an optimization issue, "
        "not model bias",
        "depth 8: fits the training data worse than depth 2 (train loss 0.31 > 0.2): an optimization issue, "
        "not model bias",
    ]


def test_deeper_models_that_fit_better_or_equally_are_not_flagged():
    assert optimization_flags(rows((1, 0.40), (2, 0.20), (4, 0.20), (8, 0.10))) == []
    # within the tolerance: run-to-run noise, not a finding
    assert optimization_flags(rows((1, 0.200), (2, 0.201)), tolerance=0.01) == []
    assert len(optimization_flags(rows((1, 0.200), (2, 0.201)), tolerance=0.0)) == 1
    assert optimization_flags(rows((1, 0.20), (2, None))) == []  # a run without a train loss is not compared


def test_best_losses_and_their_epochs():
    epochs = [
        {"epoch": 0, "train/loss": 0.9, "val/loss": 0.8},
        {"epoch": 1, "train/loss": 0.5, "val/loss": 0.6},
        {"epoch": 2, "train/loss": 0.4, "val/loss": 0.7},
        {"epoch": 3, "train/loss": 0.45},  # no validation that epoch
    ]
    assert best_losses(epochs) == {
        "best_train_loss": 0.4, "best_train_epoch": 2, "best_val_loss": 0.6, "best_val_epoch": 1,
    }  # fmt: skip


@pytest.fixture(scope="module")
def study(pm25_dir, tmp_path_factory):
    """`lit depths --config configs/pm25_mlp.yaml --depths '[3, 1]'`, 3 epochs of 3 batches: the run folder and the
    finished process."""
    root = tmp_path_factory.mktemp("depths")
    result = run_lit("depths", "--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_dir),
                     "--depths", "[3, 1]", "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "3",
                     "--trainer.default_root_dir", str(root), cwd=root)  # fmt: skip
    return root / "pm25_mlp" / "version_0", result


def epoch_losses(metrics_csv: Path, key: str) -> dict[int, float]:
    """``key`` per epoch from a run's CSVLogger file (the rows that hold it)."""
    with metrics_csv.open() as file:
        return {int(row["epoch"]): float(row[key]) for row in csv.DictReader(file) if row.get(key)}


def test_each_depth_is_trained_and_reported(study):
    run, result = study
    with (run / "depths.csv").open() as file:
        table = list(csv.DictReader(file))
    assert list(table[0]) == COLUMNS
    assert [int(row["depth"]) for row in table] == [1, 3]
    for row in table:
        depth = int(row["depth"])
        folder = run / f"depth_{depth}"
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["model"]["init_args"]["hidden"] == [WIDTH] * depth
        # the best losses, checked against the run's own metrics.csv (the logger, not the study's callback)
        for stage in ("train", "val"):
            losses = epoch_losses(folder / "metrics.csv", f"{stage}/loss")
            assert sorted(losses) == [0, 1, 2]
            best_epoch = min(losses, key=losses.get)
            assert float(row[f"best_{stage}_loss"]) == pytest.approx(losses[best_epoch])
            assert int(row[f"best_{stage}_epoch"]) == best_epoch
        assert int(row["parameters"]) > 0
    # two more hidden layers of 64 -> 64 (weights and biases), nothing else
    assert int(table[1]["parameters"]) - int(table[0]["parameters"]) == 2 * (WIDTH * WIDTH + WIDTH)

    report = (run / "depths.txt").read_text()
    numbers = [{"depth": int(row["depth"]), "best_train_loss": float(row["best_train_loss"])} for row in table]
    flags = optimization_flags(numbers, tolerance=0.01)
    for flag in flags:
        assert flag in report and flag in result.stdout
    assert ("Flags (" in report) == bool(flags) and ("No flags" in report) == (not flags)
    assert "dropout 0.3" in report  # pm25_mlp trains with dropout: the report says what that does to train/loss
    assert "best_train_loss" in result.stdout and "depth_3: " in result.stdout
    assert (run / "depths.png").stat().st_size > 10_000
    assert json.loads((run / "depth_1" / "summary.json").read_text())["metrics"]["val/loss"] > 0


def refused(capsys, tmp_path, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["depths", *args, "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "runs").exists()  # refused before any run
    return capsys.readouterr().err


def test_a_model_without_a_hidden_list_is_refused_naming_config_and_key(capsys, tmp_path):
    config = str(CONFIGS / "quickstart.yaml")
    err = refused(capsys, tmp_path, "--config", config, "--depths", "[1, 2]")
    assert (
        f"{config}: ImageClassifier (net SmallCNN) has no list of hidden layer widths (model.init_args.hidden)" in err
    )
    assert "configs/pm25_mlp.yaml" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--depths", "[]"], "--depths []: give at least one depth, e.g. --depths '[1, 2, 4, 8]'"),
        (["--depths", "[0, 2]"], "--depths [0, 2]: 0 is not a depth: each must be a whole number >= 1"),
        (["--depths", "[2, 2]"], "--depths [2, 2]: 2 is given twice"),
        (["--depths", "[1]", "--tolerance", "-0.5"], "--tolerance -0.5: give a relative tolerance >= 0"),
        (["--depths", "[1]", "--model.init_args.hidden", "[]"],
         "model.init_args.hidden is [] (no hidden layer, a linear model): give the width to repeat"),
    ],
)  # fmt: skip
def test_bad_options_name_the_option_and_the_value(capsys, tmp_path, pm25_dir, args, message):
    assert message in refused(capsys, tmp_path, "--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir",
                              str(pm25_dir), *args)  # fmt: skip
