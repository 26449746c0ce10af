"""The `lit` command run as a user runs it (a subprocess), on the shipped configs, shortened. The subprocesses are
forked from the lit zygote (conftest.run_command), except the quick start and the entry points' ``--help``: fresh
interpreters, start-up included. Where a test is about what a run writes rather than about the process, and the
subcommand runs as a subprocess elsewhere, the run goes through `lit`'s entry point in this process
(conftest.lit_in_process): the same code without a ~7 s interpreter start."""

import json
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, after, lit_env, lit_in_process, run_lit, run_lit_in, selected

from lit_mlcourse.config_saving import CHECKPOINT_KEY

SUMMARY_KEYS = {"run_dir", "best_model_path", "monitor", "best_score", "metrics"}
QUICKSTART = ["--config", str(CONFIGS / "quickstart.yaml")]
ENTRY_POINTS = [["lit"], ["lit-mlcourse"], ["python", "-m", "lit_mlcourse"]]


def help_of(command: list[str]) -> subprocess.CompletedProcess:
    executable = [str(Path(sys.executable).parent / command[0]), *command[1:]]
    return subprocess.run([*executable, "--help"], env=lit_env(), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def runs(request, background, tmp_path_factory) -> dict[str, Future]:
    """The `lit` subprocesses of the selected tests, started in the background (conftest.background) at the module's
    first test, each in a folder of its own."""
    wanted, started = selected(request), {}
    if wanted("quickstart", "learning_rate", "rerunning", "validate_and_test", "predict_without"):
        out = tmp_path_factory.mktemp("quickstart")
        # A fresh interpreter: the quick start is `lit` as a user runs it, start-up included (conftest.run_command)
        started["quickstart"] = background.submit(run_lit_in, out, "fit", *QUICKSTART, "--trainer.max_epochs", "3",
                                                  "--trainer.log_every_n_steps", "1",
                                                  fresh_interpreter=True)  # fmt: skip
    for index, command in enumerate(ENTRY_POINTS):
        if wanted(f"[command{index}]"):
            started[" ".join(command)] = background.submit(help_of, command)
    if wanted("validate_and_test"):
        best = out / "quickstart" / "version_0" / "checkpoints" / "best.ckpt"
        started["test"] = after(background, started["quickstart"], run_lit_in, tmp_path_factory.mktemp("test"),
                                "test", *QUICKSTART, "--ckpt_path", str(best))  # fmt: skip
    return started


@pytest.fixture(scope="module")
def quickstart_run(runs):
    """`lit fit --config configs/quickstart.yaml` for 3 epochs, logging every step (started by `runs`)."""
    return runs["quickstart"].result()


def test_quickstart_fit_writes_summary_checkpoints_config_and_logs(quickstart_run):
    out, result = quickstart_run
    run = out / "quickstart" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["run_dir"] == str(run)
    assert summary["best_model_path"] == str(run / "checkpoints" / "best.ckpt")
    assert summary["monitor"] == "val/loss" and 0 < summary["best_score"] < 2.3  # below chance's ln(10)
    assert summary["metrics"]["test/acc"] > 0.5  # fit ends with a test of the best checkpoint
    assert {"val/acc", "val/f1", "train/loss", "test/f1"} <= set(summary["metrics"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "run folder" in result.stdout and str(run) in result.stdout  # the terminal summary
    assert "epoch 3/3" in result.stdout  # plain progress lines when the output is not a terminal
    # config saved in the run folder, in the checkpoint, and in the loggers' config
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["name"] == "quickstart" and saved["trainer"]["max_epochs"] == 3
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert yaml.safe_load(checkpoint[CHECKPOINT_KEY]) == saved
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hparams["config"]["model"]["class_path"] == "lit_mlcourse.models.ImageClassifier"
    assert list(run.glob("events.out.tfevents.*"))  # TensorBoard beside the CSV metrics
    assert hparams["class_names"] == [str(digit) for digit in range(10)]  # linked from the data
    assert {"val/acc_top5", "test/acc_top5"} <= set(summary["metrics"])
    for stage in ("val", "test"):  # the confusion matrices, as PNG files
        assert (run / f"confusion_matrix_{stage}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_rate_is_logged_per_optimizer_step(quickstart_run):
    out, _ = quickstart_run
    import csv

    rows = list(csv.DictReader((out / "quickstart" / "version_0" / "metrics.csv").open()))
    lrs = [float(row["lr-AdamW"]) for row in rows if row.get("lr-AdamW")]
    steps_per_epoch = 20  # ceil(1,221 training images / 64)
    assert len(lrs) == 3 * steps_per_epoch
    warmup = round(0.05 * len(lrs))  # warmup_fraction: 0.05 in the quick start
    assert lrs[:warmup] == sorted(lrs[:warmup]) and lrs[0] < lrs[warmup - 1]  # rises within epoch 1
    assert lrs[warmup:] == sorted(lrs[warmup:], reverse=True)  # cosine decay, step by step


def test_rerunning_a_saved_config_starts_a_new_run(quickstart_run):
    out, _ = quickstart_run
    first = out / "quickstart" / "version_0"
    metrics_before = (first / "metrics.csv").read_text()
    assert "{version}" in (first / "config.yaml").read_text()  # the placeholders are kept
    lit_in_process("fit", "--config", str(first / "config.yaml"), "--trainer.max_epochs", "1")
    second = out / "quickstart" / "version_1"
    assert yaml.safe_load((second / "config.yaml").read_text())["trainer"]["max_epochs"] == 1
    assert json.loads((second / "summary.json").read_text())["run_dir"] == str(second)
    assert (first / "metrics.csv").read_text() == metrics_before  # the first run is untouched
    assert sorted(p.name for p in (first / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_validate_and_test_a_checkpoint(quickstart_run, runs, tmp_path):
    # `lit validate` of the quick start's best.ckpt here, `lit test` of it in a subprocess (started by `runs`)
    out, _ = quickstart_run
    best = out / "quickstart" / "version_0" / "checkpoints" / "best.ckpt"
    lit_in_process("validate", *QUICKSTART, "--ckpt_path", str(best), "--trainer.default_root_dir", str(tmp_path))
    tested, _ = runs["test"].result()
    for root, key in ((tmp_path, "val/acc"), (tested, "test/acc")):
        summary = json.loads(next(root.rglob("summary.json")).read_text())
        assert summary["best_model_path"] == str(best) and summary["metrics"][key] > 0.5


def test_predict_without_a_writer_saves_predictions_csv(quickstart_run, tmp_path):
    out, _ = quickstart_run
    best = out / "quickstart" / "version_0" / "checkpoints" / "best.ckpt"
    lit_in_process("predict", *QUICKSTART, "--ckpt_path", str(best), "--trainer.default_root_dir", str(tmp_path))
    lines = (tmp_path / "quickstart" / "version_0" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "index,class,probability" and len(lines) == 1 + 360  # one row per test image
    rows = [line.split(",") for line in lines[1:]]
    assert [int(row[0]) for row in rows] == list(range(360))
    assert {row[1] for row in rows} <= {str(digit) for digit in range(10)}
    assert all(0.1 <= float(row[2]) <= 1.0 for row in rows)  # the top class of 10 has probability >= 0.1


def test_pm25_fit_then_predict_writes_the_submission(tmp_path, pm25_dir):
    pm25 = ["--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_dir)]
    lit_in_process("fit", *pm25, "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path))
    best = tmp_path / "pm25_mlp" / "version_0" / "checkpoints" / "best.ckpt"
    summary = json.loads((best.parent.parent / "summary.json").read_text())
    assert summary["monitor"] == "val/rmse" and summary["best_score"] < 15
    result = run_lit("predict", *pm25, "--ckpt_path", str(best), "--trainer.default_root_dir", str(tmp_path),
                     cwd=tmp_path)  # fmt: skip
    submission = tmp_path / "pm25_mlp" / "version_1" / "submission.csv"
    assert f"to {submission}" in result.stdout
    lines = submission.read_text().splitlines()
    assert len(lines) == 241 and lines[0] == "id,value"
    ids = [line.split(",")[0] for line in lines[1:]]
    assert ids == [f"id_{index}" for index in range(240)]
    values = [float(line.split(",")[1]) for line in lines[1:]]
    assert 5 < sum(values) / len(values) < 60  # ug/m3, not standardized units


def test_cv_writes_per_fold_scores_and_their_mean(tmp_path, pm25_dir, capsys):
    lit_in_process("cv", "--config", str(CONFIGS / "pm25_linear.yaml"), "--data.data_dir", str(pm25_dir), "--folds",
                   "3", "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    stdout = capsys.readouterr().out
    report = json.loads((tmp_path / "pm25_linear" / "version_0" / "cv_summary.json").read_text())
    assert report["monitor"] == "val/rmse" and len(report["folds"]) == 3
    scores = [fold["score"] for fold in report["folds"]]
    assert report["mean"] == pytest.approx(sum(scores) / 3)
    assert report["std"] == pytest.approx(torch.tensor(scores).std(unbiased=False).item(), rel=1e-5)
    for fold in report["folds"]:
        assert (tmp_path / "pm25_linear" / "version_0" / f"fold_{fold['fold']}" / "summary.json").is_file()
        assert f"fold_{fold['fold']} of 3: val/rmse {fold['score']:.4f}" in stdout
    assert f"val/rmse {report['mean']:.4f} +- {report['std']:.4f} over 3 folds" in stdout


@pytest.mark.parametrize("command", ENTRY_POINTS)
def test_entry_points_list_the_subcommands(command, runs):
    result = runs[" ".join(command)].result()  # `<command> --help` (started by `runs`)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Available subcommands:", 1)[1]
    for subcommand in ("fit", "validate", "test", "predict", "cv"):
        assert f"\n    {subcommand} " in listed


def test_print_config_shows_the_resolved_model(tmp_path):
    result = run_lit(
        "fit",
        "--config",
        str(CONFIGS / "quickstart.yaml"),
        "--model.net.widths",
        "[8,16]",
        "--print_config",
        cwd=tmp_path,
    )
    config = yaml.safe_load(result.stdout)
    assert config["model"]["init_args"]["net"]["init_args"]["widths"] == [8, 16]
    assert not (tmp_path / "runs").exists()
