"""Run folders, checkpointing and cross-validation under settings other than the defaults (in-process)."""

import json

import pytest
from conftest import CONFIGS

from lit_mlcourse.cli import LitCLI, main
from lit_mlcourse.runs import wandb_online_requested


def quickstart(tmp_path, *args: str) -> list[str]:
    return ["--config", str(CONFIGS / "quickstart.yaml"), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", *args]  # fmt: skip


@pytest.mark.parametrize(
    ("monitor", "mode", "expected"),
    [(None, None, ("val/loss", "min")),  # the quick start's choice
     ("null", None, ("val/acc", "max")),  # the task's own
     ("val/f1", None, ("val/f1", "max")), ("val/loss", None, ("val/loss", "min")),
     ("val/loss", "max", ("val/loss", "max")), ("train/r2", None, ("train/r2", "max"))],
)  # fmt: skip
def test_checkpoint_monitor_and_direction(tmp_path, monitor, mode, expected):
    args = quickstart(tmp_path)
    args += ["--checkpoint.monitor", monitor] if monitor else []
    args += ["--checkpoint.mode", mode] if mode else []
    cli = LitCLI(args=args, run=False)
    assert (cli.trainer.checkpoint_callback.monitor, cli.trainer.checkpoint_callback.mode) == expected


def test_fit_without_checkpointing_or_loggers(tmp_path):
    main(["fit", *quickstart(tmp_path, "--trainer.enable_checkpointing", "false", "--trainer.logger", "false")])
    run = tmp_path / "quickstart" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run_dir"] == str(run) and summary["best_model_path"] == ""
    assert summary["metrics"]["test/acc"] >= 0  # tested with the final weights
    assert (run / "config.yaml").is_file() and not (run / "checkpoints").exists()


def test_cv_folds_keep_apart_without_loggers(tmp_path):
    main(["cv", *quickstart(tmp_path, "--trainer.logger", "false"), "--folds", "2"])
    run = tmp_path / "quickstart" / "version_0"
    report = json.loads((run / "cv_summary.json").read_text())
    assert [fold["run_dir"] for fold in report["folds"]] == [str(run / "fold_0"), str(run / "fold_1")]
    for fold in (0, 1):
        assert (run / f"fold_{fold}" / "checkpoints" / "best.ckpt").is_file()
        assert json.loads((run / f"fold_{fold}" / "summary.json").read_text())["run_dir"] == str(run / f"fold_{fold}")


def test_cv_with_wandb_offline_makes_one_run_per_fold(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    main(["cv", *quickstart(tmp_path), "--config", str(CONFIGS / "logger" / "wandb.yaml"), "--folds", "2"])
    run = tmp_path / "quickstart" / "version_0"
    for fold in (0, 1):
        assert len(list((run / f"fold_{fold}" / "wandb").glob("offline-run-*"))) == 1
        assert (run / f"fold_{fold}" / "metrics.csv").is_file()  # CSV and TensorBoard stay beside wandb


def test_wandb_preset_adds_an_offline_logger_to_the_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cli = LitCLI(args=[*quickstart(tmp_path), "--config", str(CONFIGS / "logger" / "wandb.yaml")], run=False)
    kinds = [type(logger).__name__ for logger in cli.trainer.loggers]
    assert kinds == ["CSVLogger", "TensorBoardLogger", "WandbLogger"]
    wandb = cli.trainer.loggers[2]
    assert wandb._offline is True and wandb.save_dir == str(tmp_path / "quickstart" / "version_0")
    assert wandb._wandb_init["name"] == "quickstart-version_0"


def test_wandb_goes_online_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_online_requested()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password key\n")
    assert wandb_online_requested()
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_online_requested()
