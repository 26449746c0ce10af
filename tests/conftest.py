"""Shared fixtures: the real course data, synthetic files, and running `lit` as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests never download: code that would fetch data or weights fails as it does offline.
os.environ["LIT_MLCOURSE_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``$LIT_MLCOURSE_TEST_DATA`` (CI sets it to ../shared/data); when set, its files must exist."""
    folder = os.environ.get("LIT_MLCOURSE_TEST_DATA")
    if not folder:
        candidate = ROOT.parent / "shared" / "data"
        if not candidate.is_dir():
            pytest.skip("LIT_MLCOURSE_TEST_DATA is not set and ../shared/data is absent")
        folder = str(candidate)
    path = Path(folder).resolve()
    for name in ("pm25/train.csv", "pm25/test.csv"):
        assert (path / name).is_file(), f"LIT_MLCOURSE_TEST_DATA={folder} lacks {name}"
    return path


@pytest.fixture(scope="session")
def pm25_dir(real_data: Path) -> Path:
    return real_data / "pm25"


@pytest.fixture(scope="session")
def hymenoptera_dir(real_data: Path) -> Path:
    folder = real_data / "hymenoptera_data"
    assert (folder / "train" / "ants").is_dir(), f"{real_data} lacks hymenoptera_data/train/ants"
    return folder


@pytest.fixture(scope="session")
def cifar_layer(tmp_path_factory) -> Path:
    """A config layer (``--config`` it after a CIFAR config) pointing at a synthetic CIFAR-10 folder of 200
    training and 40 test images, with its md5 table and a 40-image validation split."""
    import yaml
    from cifar_fixtures import write_cifar_folder

    root = tmp_path_factory.mktemp("cifar")
    checksums = write_cifar_folder(root / "data", per_batch=40)
    layer = {"data": {"init_args": {"data_dir": str(root / "data"), "checksums": checksums, "val_size": 40}}}
    path = root / "synthetic.yaml"
    path.write_text(yaml.safe_dump(layer))
    return path


def lit_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one thread is fastest and reproducible
    env["WANDB_MODE"] = "offline"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_lit(*args: str, cwd: Path | None = None, check: bool = True, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run the installed ``lit`` executable as a user would; output captured as text."""
    lit = Path(sys.executable).parent / "lit"
    result = subprocess.run([str(lit), *args], cwd=cwd, env=lit_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"lit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def judge_checkpoint(tmp_path_factory) -> str:
    """best.ckpt of a one-epoch `lit fit --config configs/quickstart.yaml`: a digits classifier, the GAN's judge."""
    root = tmp_path_factory.mktemp("judge")
    run_lit("fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.max_epochs", "1",
            "--trainer.default_root_dir", str(root), cwd=root)  # fmt: skip
    return str(root / "quickstart" / "version_0" / "checkpoints" / "best.ckpt")


@pytest.fixture(scope="session")
def cifar_judge_checkpoint(cifar_layer, tmp_path_factory) -> str:
    """best.ckpt of a short `lit fit --config configs/cifar10_cnn.yaml` on the synthetic CIFAR-10 folder."""
    root = tmp_path_factory.mktemp("cifar_judge")
    run_lit("fit", "--config", str(CONFIGS / "cifar10_cnn.yaml"), "--config", str(cifar_layer), "--trainer.max_epochs",
            "1", "--trainer.limit_train_batches", "2", "--data.batch_size", "16", "--trainer.default_root_dir",
            str(root), cwd=root)  # fmt: skip
    return str(root / "cifar10_cnn" / "version_0" / "checkpoints" / "best.ckpt")


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> Path:
    """A stand-in for torch-fidelity's pt_inception-2015-12-05-6726825d.pth (the real one is a download): the same
    network with random weights, its batch-norm statistics set from random images so that features neither vanish
    nor explode through its 90 layers."""
    from unittest import mock

    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    with (
        mock.patch.object(inception, "load_state_dict_from_url", return_value=None),
        mock.patch.object(inception.FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        network = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average: one batch sets the statistics
            module.reset_running_stats()
    network.train()
    with torch.no_grad():
        network(torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)))
        network.fc.weight.mul_(0.1)  # logits spread like a trained network's, not so far that softmax underflows
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(network.state_dict(), path)
    return path
