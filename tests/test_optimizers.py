"""Every optimizer the course teaches, chosen from the config, trains the PM2.5 model."""

import pytest
import torch
from conftest import CONFIGS

from lit_mlcourse.cli import LitCLI

COURSE_OPTIMIZERS = [
    ("SGD", ["--optimizer.lr", "0.01", "--optimizer.momentum", "0.9"], {"momentum": 0.9}),
    ("Adagrad", ["--optimizer.lr", "0.3"], {}),
    ("RMSprop", ["--optimizer.lr", "0.003"], {}),
    ("Adam", ["--optimizer.lr", "0.01"], {}),
    ("AdamW", ["--optimizer.lr", "0.01", "--optimizer.weight_decay", "0.01"], {"weight_decay": 0.01}),
]


@pytest.mark.parametrize(("name", "args", "expected"), COURSE_OPTIMIZERS, ids=[o[0] for o in COURSE_OPTIMIZERS])
def test_course_optimizer_from_the_config_trains(name, args, expected, tmp_path, pm25_dir):
    cli = LitCLI(
        args=[
            "--config", str(CONFIGS / "pm25_linear.yaml"), "--data.data_dir", str(pm25_dir),
            "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "4",
            "--trainer.enable_progress_bar", "false", "--optimizer", name, *args,
            "--lr_scheduler", "WarmupDecay", "--lr_scheduler.warmup_steps", "2",
        ],
        run=False,
    )  # fmt: skip
    before = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]["val/rmse"]
    cli.trainer.fit(cli.model, cli.datamodule)
    optimizer = cli.trainer.optimizers[0]
    assert type(optimizer).__name__ == name
    for key, value in expected.items():
        assert optimizer.defaults[key] == value
    after = float(cli.trainer.callback_metrics["val/rmse"])
    assert after < 0.8 * before, f"{name}: val/rmse {before:.2f} -> {after:.2f}"
    # the warmup schedule stepped once per optimizer step (not per epoch)
    assert cli.trainer.lr_scheduler_configs[0].interval == "step"
    assert cli.trainer.lr_scheduler_configs[0].scheduler.last_epoch == cli.trainer.global_step


def test_any_torch_optimizer_works_from_yaml(tmp_path, pm25_dir):
    config = tmp_path / "opt.yaml"
    config.write_text(
        "model:\n  init_args:\n    optimizer:\n      class_path: torch.optim.NAdam\n"
        "      init_args: {lr: 0.01, momentum_decay: 0.003}\n"
    )
    cli = LitCLI(
        args=["--config", str(CONFIGS / "pm25_linear.yaml"), "--config", str(config),
              "--data.data_dir", str(pm25_dir), "--trainer.default_root_dir", str(tmp_path),
              "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false"],
        run=False,
    )  # fmt: skip
    before = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]["val/rmse"]
    cli.trainer.fit(cli.model, cli.datamodule)
    optimizer = cli.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.NAdam) and optimizer.defaults["momentum_decay"] == 0.003
    assert float(cli.trainer.callback_metrics["val/rmse"]) < 0.8 * before
