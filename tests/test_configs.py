"""Every YAML in configs/ instantiates through the CLI, and the CLI wires data facts into models."""

from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS

from lit_mlcourse.cli import LitCLI
from lit_mlcourse.schedules import WarmupDecay

COMPLETE = sorted(CONFIGS.glob("*.yaml"))
PRESETS = sorted(path for path in CONFIGS.glob("*/*.yaml"))


def cli(*args: str, tmp_path: Path, pm25_dir: Path | None = None) -> LitCLI:
    extra = ["--data.data_dir", str(pm25_dir)] if pm25_dir else []
    return LitCLI(args=[*args, *extra, "--trainer.default_root_dir", str(tmp_path)], run=False)


def data_args(config: Path, pm25_dir: Path, cifar_layer: Path, hymenoptera_dir: Path, judges: tuple) -> list[str]:
    """Where each config's data (and a GAN's judge) is in the tests (the configs default to ./data, ./runs)."""
    if "gan" in config.name:
        cifar = "cifar10" in config.name
        return ["--model.judge", judges[cifar], *(["--config", str(cifar_layer)] if cifar else [])]
    if "pm25" in config.name:
        return ["--data.data_dir", str(pm25_dir)]
    if "cifar10" in config.name:
        return ["--config", str(cifar_layer)]
    if "imagefolder" in config.name:
        return ["--data.root", str(hymenoptera_dir)]
    return []


@pytest.mark.parametrize("config", COMPLETE, ids=lambda path: path.name)
def test_every_complete_config_instantiates(
    config, tmp_path, pm25_dir, cifar_layer, hymenoptera_dir, judge_checkpoint, cifar_judge_checkpoint
):
    judges = (judge_checkpoint, cifar_judge_checkpoint)
    extra = data_args(config, pm25_dir, cifar_layer, hymenoptera_dir, judges)
    instance = cli("--config", str(config), *extra, tmp_path=tmp_path)
    assert instance.model is not None and instance.datamodule is not None
    # The config's own choice (the quick start: val/loss), else the task's metric.
    chosen = (yaml.safe_load(config.read_text()).get("checkpoint") or {}).get("monitor")
    assert instance.config.checkpoint.monitor == (chosen or type(instance.model).monitor)
    optimizer = instance.model.build_optimizer()
    assert isinstance(optimizer, torch.optim.Optimizer)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_preset_stacks_on_the_quick_start(preset, tmp_path):
    args = ("--config", str(CONFIGS / "quickstart.yaml"), "--config", str(preset))
    if preset.name == "fp16.yaml":  # a GPU preset on a CPU config: refused (tests/test_trainer_presets.py)
        with pytest.raises(SystemExit):
            cli(*args, tmp_path=tmp_path)
        return
    instance = cli(*args, tmp_path=tmp_path)
    assert instance.trainer is not None


def test_data_facts_are_linked_into_the_model(tmp_path, pm25_dir):
    instance = cli(
        "--config",
        str(CONFIGS / "pm25_linear.yaml"),
        "--data.features",
        "[PM2.5, PM10]",
        "--data.window",
        "5",
        "--data.hours",
        "null",
        tmp_path=tmp_path,
        pm25_dir=pm25_dir,
    )
    assert instance.model.hparams.input_shape == [5, 2]  # lists: hparams.yaml stays plain YAML
    assert instance.model.net.body[0].in_features == 10
    assert instance.model.input_mean.tolist() == pytest.approx(instance.datamodule.standardization["mean"])
    digits = cli("--config", str(CONFIGS / "quickstart.yaml"), tmp_path=tmp_path)
    assert digits.model.hparams.num_classes == 10 and tuple(digits.model.hparams.image_shape) == (1, 8, 8)
    assert digits.model.net.features[0][0].in_channels == 1
    # The quick start picks its checkpoint by val/loss (lower is better); PM2.5 by its task's val/rmse.
    assert (digits.config.checkpoint.monitor, digits.config.checkpoint.mode) == ("val/loss", "min")
    assert instance.config.checkpoint.mode == "min"


def test_overrides_from_the_issue(tmp_path, pm25_dir):
    instance = cli(
        "--config",
        str(CONFIGS / "pm25_linear.yaml"),
        "--model.hidden",
        "[64,32]",
        "--optimizer",
        "Adagrad",
        "--optimizer.lr",
        "0.1",
        "--lr_scheduler",
        "WarmupDecay",
        "--lr_scheduler.warmup_steps",
        "3",
        tmp_path=tmp_path,
        pm25_dir=pm25_dir,
    )
    widths = [layer.out_features for layer in instance.model.net.body if isinstance(layer, torch.nn.Linear)]
    assert widths == [64, 32, 1]
    optimizer = instance.model.build_optimizer()
    assert isinstance(optimizer, torch.optim.Adagrad) and optimizer.defaults["lr"] == 0.1
    assert isinstance(instance.model.make_lr_scheduler(optimizer), WarmupDecay)


def test_experiment_name_and_run_folder(tmp_path):
    instance = cli("--config", str(CONFIGS / "quickstart.yaml"), tmp_path=tmp_path)
    assert instance.config.name == "quickstart"
    assert instance.run_dir == tmp_path / "quickstart" / "version_0"
    assert [Path(logger.log_dir) for logger in instance.trainer.loggers] == [instance.run_dir] * 2
    (tmp_path / "quickstart" / "version_0").mkdir(parents=True)
    again = cli("--config", str(CONFIGS / "quickstart.yaml"), "--name", "mine", tmp_path=tmp_path)
    assert again.run_dir == tmp_path / "mine" / "version_0"
    third = cli("--config", str(CONFIGS / "quickstart.yaml"), tmp_path=tmp_path)
    assert third.run_dir == tmp_path / "quickstart" / "version_1"


def test_warmup_in_steps_instead_of_the_configured_fraction(tmp_path):
    instance = cli("--config", str(CONFIGS / "quickstart.yaml"), "--lr_scheduler.warmup_fraction", "0",
                   "--lr_scheduler.warmup_steps", "7", tmp_path=tmp_path)  # fmt: skip
    optimizer = instance.model.build_optimizer()
    scheduler = instance.model.make_lr_scheduler(optimizer)
    assert (scheduler.warmup_steps, scheduler.warmup_fraction) == (7, 0.0)
