"""The README's `lit fit` commands parse and instantiate as written (run=False: nothing trains), and
its install and test commands are where .ci/run looks for them."""

import shlex

import pytest
import torch
from conftest import ROOT

from lit_mlcourse.cli import LitCLI
from lit_mlcourse.models.simclr import CHECKPOINT_TAG

README = (ROOT / "README.md").read_text()


def fit_commands() -> list[str]:
    commands = []
    for line in README.splitlines():
        line = line.split("  #", 1)[0].strip()
        if line.startswith("lit fit ") and "--config" in line and "--print_config" not in line:
            commands.append(" ".join(line.split()))
    return commands


def test_the_readme_shows_fit_commands():
    assert len(fit_commands()) >= 7


@pytest.mark.parametrize("command", fit_commands())
def test_readme_fit_command_instantiates(
    command, tmp_path, pm25_dir, hymenoptera_dir, cifar_layer, judge_checkpoint, cifar_judge_checkpoint, monkeypatch
):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = shlex.split(command)[2:]  # after `lit fit`
    if "pm25" in command and "--data.data_dir" not in args:
        args += ["--data.data_dir", str(pm25_dir)]
    if "cifar10" in command:  # the README's data folder, here the synthetic one
        args = [arg for arg in args if arg != "--data.data_dir" and arg != "data"] + ["--config", str(cifar_layer)]
    local = {"data/pm25": pm25_dir, "../shared/data/hymenoptera_data": hymenoptera_dir}
    args = [str(local.get(arg, arg)) for arg in args]
    if "--model.judge" in args:  # the quick start's checkpoint of the line before
        args[args.index("--model.judge") + 1] = cifar_judge_checkpoint if "cifar10" in command else judge_checkpoint
    if "--model.backbone_ckpt" in args:  # the pretraining run of the line before: a stand-in checkpoint
        at = args.index("--model.backbone_ckpt")
        args[at + 1] = str(simclr_checkpoint(args[:at] + args[at + 2 :], tmp_path))
    if "--ckpt_path" in args:  # an argument of `fit` itself, not of the config (run=False takes no subcommand)
        at = args.index("--ckpt_path")
        args = args[:at] + args[at + 2 :]
    cli = LitCLI(args=[*args, "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert cli.model is not None and cli.trainer is not None


def simclr_checkpoint(args: list[str], tmp_path) -> str:
    """A SimCLR-tagged checkpoint holding the backbone of the fine-tune these arguments configure."""
    features = LitCLI(args=[*args, "--trainer.default_root_dir", str(tmp_path)], run=False).model.net.features
    path = tmp_path / "simclr.ckpt"
    state = {f"backbone.{key}": value for key, value in features.state_dict().items()}
    torch.save({"state_dict": state, "lit_mlcourse_task": CHECKPOINT_TAG}, path)
    return path


def test_ci_blocks_hold_one_command_each():
    for marker in ("<!-- ci:install -->", "<!-- ci:test -->"):
        block = README.split(marker, 1)[1].split("```", 2)[1]
        commands = [line for line in block.splitlines()[1:] if line.strip()]
        assert len(commands) == 1, (marker, commands)
