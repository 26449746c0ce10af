"""`lit batch-sizes` through the `lit` command: one run per batch size, the learning rate each rule gives it, the
table (CSV and printed), the figure, and the errors for bad options. Tiny runs: 2 batch sizes, 2 epochs of 2
batches; the figures of a real study are in the README."""

import csv
import json
import math
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, run_lit, selected

from lit_mlcourse.cli import main
from lit_mlcourse.studies.batch_size import scaled_lr

BASE_SIZE = 32  # given on the command line; the quick start's AdamW lr is 0.01
SIZES = (16, 64)
TINY = ("--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--data.batch_size", str(BASE_SIZE))  # fmt: skip
COLUMNS = ["batch_size", "lr", "epochs", "steps_per_epoch", "epoch_s", "update_ms", "train_loss", "train_acc",
           "val_loss", "val_acc", "sharpness"]  # fmt: skip
# The rate each rule gives batch 16 and 64 from 0.01 at batch 32, worked out by hand (not by the code under test).
EXPECTED_LR = {
    "none": {16: 0.01, 64: 0.01},
    "linear": {16: 0.005, 64: 0.02},
    "sqrt": {16: 0.01 / math.sqrt(2), 64: 0.01 * math.sqrt(2)},
}
# One study runs end to end (sqrt: the rate goes down for 16 and up for 64); the other rules are the same code path
# with another factor, checked on numbers by test_scaling_rules_on_numbers.
RULES = ("sqrt",)


def study(root: Path, rule: str):
    """`lit batch-sizes --config configs/quickstart.yaml --sizes '[64, 16]' --lr_scaling <rule>` in ``root``: the
    run folder and the finished process."""
    result = run_lit("batch-sizes", "--config", str(CONFIGS / "quickstart.yaml"), "--sizes", "[64, 16]",
                     "--lr_scaling", rule, *TINY, "--trainer.default_root_dir", str(root), cwd=root)  # fmt: skip
    return root / "quickstart" / "version_0", result


@pytest.fixture(scope="module")
def studies(request, background, tmp_path_factory) -> dict[str, Future]:
    """One study per rule of RULES, started beside the tests (conftest.background)."""
    wanted = selected(request)
    return {
        rule: background.submit(study, tmp_path_factory.mktemp(f"batch_{rule}"), rule)
        for rule in RULES
        if wanted(rule, "figure")
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_scaling_rules_on_numbers():
    for rule, rates in EXPECTED_LR.items():
        assert {size: scaled_lr(0.01, size, BASE_SIZE, rule) for size in SIZES} == pytest.approx(rates)
    assert scaled_lr(0.01, 64, 32, "none") == 0.01
    assert scaled_lr(0.01, 64, 32, "linear") == pytest.approx(0.02)
    assert scaled_lr(0.01, 8, 32, "linear") == pytest.approx(0.0025)
    assert scaled_lr(0.01, 128, 32, "sqrt") == pytest.approx(0.02)
    assert scaled_lr(0.01, 16, 32, "sqrt") == pytest.approx(0.01 / math.sqrt(2))


@pytest.mark.parametrize("rule", RULES)
def test_each_batch_size_trains_with_the_rate_its_rule_gives(studies, rule):
    run, _ = studies[rule].result()
    rows = read_csv(run / "batch_sizes.csv")
    assert [int(row["batch_size"]) for row in rows] == list(SIZES)  # sorted, whatever the order given
    for row in rows:
        size = int(row["batch_size"])
        expected = EXPECTED_LR[rule][size]
        folder = run / f"batch_{size}"
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["data"]["init_args"]["batch_size"] == size
        assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == pytest.approx(expected)
        assert float(row["lr"]) == pytest.approx(expected)
        # the rate the optimizer really started from (the schedule keeps it as initial_lr)
        checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert checkpoint["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(expected)


def test_table_figure_and_sharpness(studies):
    run, result = studies["sqrt"].result()
    rows = read_csv(run / "batch_sizes.csv")
    assert list(rows[0]) == COLUMNS
    for row in rows:
        folder = run / f"batch_{row['batch_size']}"
        assert int(row["epochs"]) == 2 and int(row["steps_per_epoch"]) == 2  # limit_train_batches
        epoch_s, update_ms = float(row["epoch_s"]), float(row["update_ms"])
        assert epoch_s > 0 and update_ms == pytest.approx(1000 * epoch_s / 2, rel=0.3)  # medians of 2 epochs
        with (folder / "epochs.csv").open() as file:
            epochs = list(csv.DictReader(file))
        assert [int(epoch["steps"]) for epoch in epochs] == [2, 2]
        # the last epoch's values, as the run's own summary has them
        metrics = json.loads((folder / "summary.json").read_text())["metrics"]
        for column, key in (("train_loss", "train/loss"), ("val_loss", "val/loss"), ("val_acc", "val/acc")):
            assert float(row[column]) == pytest.approx(metrics[key])
        assert 0 <= float(row["train_acc"]) <= 1
        # sharpness: the at-end row of the run's hessian.csv (the last one)
        hessian = read_csv(folder / "hessian.csv")
        assert float(row["sharpness"]) == pytest.approx(float(hessian[-1]["max_eig"]))
        assert math.isfinite(float(row["sharpness"])) and float(row["sharpness"]) > 0
    assert "batch_size" in result.stdout and "sharpness" in result.stdout
    for size in SIZES:
        assert f"batch_{size}: lr " in result.stdout

    import matplotlib.image

    png = run / "batch_sizes.png"
    assert png.stat().st_size > 20_000  # six panels of curves, not an empty canvas
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    assert pixels[..., :3].std() > 0.05


def bad_option(capsys, tmp_path, *args: str, config: str = "quickstart.yaml") -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["batch-sizes", "--config", str(CONFIGS / config), "--trainer.default_root_dir",
              str(tmp_path / "runs"), *args])  # fmt: skip
    assert exit_info.value.code == 2
    assert not (tmp_path / "runs").exists()  # refused before any run
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "[]"], "--sizes []: give at least one batch size, e.g. --sizes '[8, 32, 128, 512]'"),
        (["--sizes", "[8, 0]"], "--sizes [8, 0]: 0 is not a batch size: each must be a whole number >= 1"),
        (["--sizes", "[8, -4]"], "--sizes [8, -4]: -4 is not a batch size"),
        (["--sizes", "[8, 32, 8]"], "--sizes [8, 32, 8]: 8 is given twice: give each batch size once"),
        (
            ["--sizes", "[8]", "--lr_scaling", "cubic"],
            "--lr_scaling cubic: unknown rule; use one of none, linear, sqrt",
        ),
    ],
)
def test_bad_options_name_the_option_and_the_value(capsys, tmp_path, args, message):
    assert message in bad_option(capsys, tmp_path, *args)


def test_the_gan_is_refused_before_any_run_saying_why(capsys, tmp_path):
    message = bad_option(capsys, tmp_path, "--sizes", "[16, 32]", config="digits_gan.yaml")  # the judge unread
    assert "digits_gan.yaml: `lit batch-sizes` reports each batch size's sharpness" in message
    assert "does not apply to lit_mlcourse.models.GAN: a GAN is a two-player game" in message
