"""`--ckpt_path` refuses a checkpoint of another model, of other data (even of identical keys and shapes) or of other
optimizer groups before anything changes (RELIABILITY.md row 9); every checkpoint lit writes records what it was
trained on and how, and loads with torch.load(weights_only=True) (rows 23 and 10c).

The short runs that write the checkpoints run in this process (conftest.lit_in_process); the two refused fits that
show what a user sees, exit status included, run as `lit` subprocesses beside the other tests (conftest.background)."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, lit_in_process, run_lit, selected
from pm25_fixtures import course_days, random_readings, write_test, write_train

# Imported with the module, as pytest collects it: Lightning's log handler, made at its first import, then writes to
# the session's stderr, not to the capsys stream of the first test that runs `lit` in this process (closed after it).
import lit_mlcourse.cli  # noqa: F401
from lit_mlcourse.checkpoint_identity import RECORD_KEY, check_weights
from lit_mlcourse.data import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule, PM25DataModule
from lit_mlcourse.errors import ConfigValueError

# One epoch of two batches, validated on one batch (what picks best.ckpt), no sanity check, no test after the fit.
SHORT = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.num_sanity_val_steps", "0", "--trainer.check_val_every_n_epoch", "1",
         "--test_after_fit", "false")  # fmt: skip
REFUSED = "refused before anything was loaded"
REGRESSOR, PM25 = "lit_mlcourse.models.regression.Regressor", "lit_mlcourse.data.pm25.PM25DataModule"
CLASSIFIER, DIGITS = "lit_mlcourse.models.classification.ImageClassifier", "lit_mlcourse.data.digits.DigitsDataModule"


def fit(root: Path, config: str, *args: str) -> Path:
    """A short `lit fit --config configs/<config>` in this process; its run folder."""
    lit_in_process("fit", "--config", str(CONFIGS / config), *SHORT, "--trainer.default_root_dir", str(root), *args)
    return root / Path(config).stem / "version_0"


def lit_error(capsys, root: Path, *args: str) -> str:
    """``lit *args`` in this process, refused with exit status 2 before it made a run folder under ``root``: what it
    wrote to stderr."""
    with pytest.raises(SystemExit) as exit_info:
        lit_in_process(*args, "--trainer.default_root_dir", str(root))
    assert exit_info.value.code == 2
    assert not root.exists(), f"a refused run wrote {sorted(root.rglob('*'))}"
    return capsys.readouterr().err


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time: a refused run changes none, adds none."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*")}


@pytest.fixture(scope="module")
def pm25_data(tmp_path_factory) -> tuple[Path, Path]:
    """Two folders of course files of the same layout (18 measurements, 2 months of 20 days): the data the MLP is
    trained on, and another dataset, which gives a model of identical keys and shapes."""
    root = tmp_path_factory.mktemp("pm25_data")
    days = course_days()
    for name, seed in (("a", 0), ("b", 1)):
        write_train(root / name, days, random_readings(len(days), seed))
        write_test(root / name)
    return root / "a", root / "b"


@pytest.fixture(scope="module")
def pm25_run(pm25_data, tmp_path_factory) -> Path:
    return fit(tmp_path_factory.mktemp("pm25"), "pm25_mlp.yaml", "--data.data_dir", str(pm25_data[0]))


@pytest.fixture(scope="module")
def simclr_run(tmp_path_factory) -> Path:
    return fit(tmp_path_factory.mktemp("simclr"), "digits_simclr.yaml")


@dataclass
class RefusedFit:
    process: Future  # of the `lit fit` (a subprocess.CompletedProcess)
    root: Path  # its --trainer.default_root_dir
    untouched: Path  # a folder it must leave as it was
    before: dict[str, tuple[int, int]]  # that folder's snapshot() before it ran


@pytest.fixture(scope="module", autouse=True)
def refused_fits(request, background, tmp_path_factory) -> dict[str, RefusedFit]:
    """The refused fits run as a user runs them, started in the background at the module's first test."""
    wanted, started = selected(request), {}

    def start(name: str, untouched: Path, root: Path, *args: str) -> None:
        before = snapshot(untouched)
        process = background.submit(run_lit, *args, "--trainer.default_root_dir", str(root), cwd=root, check=False)
        started[name] = RefusedFit(process, root, untouched, before)

    if wanted("cnn_checkpoint_is_refused_by_the_pm25_fit"):
        cnn, data = request.getfixturevalue("judge_checkpoint"), request.getfixturevalue("pm25_data")[0]
        start("cnn", Path(cnn).parents[2], tmp_path_factory.mktemp("refused_cnn"), "fit", "--config",
              str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(data), "--ckpt_path", cnn)  # fmt: skip
    if wanted("other_data_is_refused_by_the_resumed_fit"):
        run, other = request.getfixturevalue("pm25_run"), request.getfixturevalue("pm25_data")[1]
        # `--ckpt_path last` continues the run in its own folder: a refusal must leave its metrics.csv as it is.
        start("other_data", run.parents[1], run.parents[1], "fit", "--config", str(CONFIGS / "pm25_mlp.yaml"),
              "--data.data_dir", str(other), "--ckpt_path", "last")  # fmt: skip
    return started


def refused_fit(refused_fits, name: str) -> str:
    """The stderr of the refused fit ``name``, after checking that it failed and changed nothing."""
    fit = refused_fits[name]
    result = fit.process.result()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(fit.untouched) == fit.before
    return result.stderr


# (a) a digits CNN checkpoint given to the PM2.5 MLP (its `lit fit` as a subprocess: at the end)


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_a_cnn_checkpoint_is_refused_by_evaluation(capsys, tmp_path, judge_checkpoint, pm25_data, subcommand):
    before = snapshot(Path(judge_checkpoint).parents[2])
    err = lit_error(capsys, tmp_path / "runs", subcommand, "--config", str(CONFIGS / "pm25_mlp.yaml"),
                    "--data.data_dir", str(pm25_data[0]), "--ckpt_path", judge_checkpoint)  # fmt: skip
    assert f"ckpt_path: {judge_checkpoint} is a checkpoint of another model and other data: {REFUSED}" in err
    assert f"model in the checkpoint: {CLASSIFIER}\n  model in this run:       {REGRESSOR}\n" in err
    assert "weights: 26 not in this model: net.features.0.0.weight" in err
    assert snapshot(Path(judge_checkpoint).parents[2]) == before


# (b) a SimCLR checkpoint given to the GAN


def test_b_a_simclr_checkpoint_is_refused_by_the_gan(capsys, tmp_path, simclr_run, judge_checkpoint):
    simclr = simclr_run / "checkpoints" / "best.ckpt"
    before = snapshot(simclr_run)
    err = lit_error(capsys, tmp_path / "runs", "fit", "--config", str(CONFIGS / "digits_gan.yaml"), "--model.judge",
                    judge_checkpoint, "--ckpt_path", str(simclr))  # fmt: skip
    assert f"ckpt_path: {simclr} is a checkpoint of another model: {REFUSED}" in err
    assert "model in the checkpoint: lit_mlcourse.models.simclr.SimCLR\n" in err
    assert "model in this run:       lit_mlcourse.models.gan.GAN\n" in err
    assert f"data in the checkpoint:  {DIGITS}, fingerprint sklearn.datasets.load_digits" in err
    assert f"data in this run:        {DIGITS}, fingerprint sklearn.datasets.load_digits" in err
    assert "missing in the checkpoint: discriminator." in err
    assert "not in this model: backbone.0.0.weight" in err
    assert snapshot(simclr_run) == before


# (c) the same MLP, trained on another dataset: identical keys and shapes (`lit fit` as a subprocess: at the end)


def test_c_other_data_is_refused_by_validate_and_only_noted_by_predict(capsys, tmp_path, pm25_run, pm25_data):
    best = pm25_run / "checkpoints" / "best.ckpt"
    args = ("--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_data[1]), "--ckpt_path", str(best))
    err = lit_error(capsys, tmp_path / "runs", "validate", *args)
    assert f"ckpt_path: {best} is a checkpoint of other data: {REFUSED}" in err
    # Predicting inputs the model was not trained on is what predict is for.
    with pytest.warns(UserWarning, match=re.escape(f"ckpt_path: {best} was trained on other data")):
        lit_in_process("predict", *args, "--trainer.default_root_dir", str(tmp_path / "runs"))
    assert (tmp_path / "runs" / "pm25_mlp" / "version_0" / "submission.csv").is_file()  # configs/pm25_mlp.yaml's


# (d) an optimizer state over other parameter groups


def test_d_other_optimizer_groups_are_refused_by_fit(capsys, tmp_path, pm25_run, pm25_data):
    # As a checkpoint of an earlier version of a model whose parameter_groups() changed: the last two tensors (the
    # output layer) in a group of their own.
    checkpoint = torch.load(pm25_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    (group,) = checkpoint["optimizer_states"][0]["param_groups"]
    checkpoint["optimizer_states"][0]["param_groups"] = [
        {**group, "params": group["params"][:-2]},
        {**group, "params": group["params"][-2:]},
    ]
    path = tmp_path / "regrouped.ckpt"
    torch.save(checkpoint, path)
    args = ("--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_data[0]), "--ckpt_path", str(path))
    err = lit_error(capsys, tmp_path / "runs", "fit", *args)
    count = len(group["params"])
    assert (
        f"ckpt_path: {path} holds the state of an optimizer over 2 parameter groups ({count - 2} + 2 tensors), but "
        f"this config builds AdamW over 1 parameter group ({count} tensors): {REFUSED}"
    ) in err


def test_a_checkpoint_from_before_the_record_loads_with_a_warning(tmp_path, pm25_run, pm25_data):
    checkpoint = torch.load(pm25_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    del checkpoint[RECORD_KEY]
    path = tmp_path / "old.ckpt"
    torch.save(checkpoint, path)
    with pytest.warns(UserWarning, match=re.escape(f"ckpt_path: {path} was written before lit recorded")):
        lit_in_process("validate", "--config", str(CONFIGS / "pm25_mlp.yaml"), "--data.data_dir", str(pm25_data[0]),
                       "--ckpt_path", str(path), "--trainer.default_root_dir", str(tmp_path / "runs"))  # fmt: skip
    assert (tmp_path / "runs" / "pm25_mlp" / "version_0" / "summary.json").is_file()


# Every task's checkpoints: what and how they were trained (rows 23 and 10c)


def plain(value) -> bool:
    """Only what torch.load(weights_only=True) rebuilds as it was: str, int, float, bool, None, lists, dicts."""
    if isinstance(value, dict):
        return all(type(key) is str and plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(plain(item) for item in value)
    return type(value) in (str, int, float, bool, type(None))


def test_every_task_records_what_and_how_it_was_trained(
    tmp_path_factory, pm25_data, pm25_run, simclr_run, judge_checkpoint
):
    pm25_fingerprint = PM25DataModule(data_dir=str(pm25_data[0])).data_fingerprint
    finetune = fit(tmp_path_factory.mktemp("finetune"), "digits_finetune.yaml", "--model.backbone_ckpt",
                   str(simclr_run / "checkpoints" / "best.ckpt"))  # fmt: skip
    gan = fit(tmp_path_factory.mktemp("gan"), "digits_gan.yaml", "--model.judge", judge_checkpoint,
              "--model.num_eval_samples", "16")  # fmt: skip
    runs = {
        "regression.Regressor": pm25_run,
        "classification.ImageClassifier": Path(judge_checkpoint).parents[1],
        "finetune.FineTunedClassifier": finetune,
        "simclr.SimCLR": simclr_run,
        "gan.GAN": gan,
    }
    for model, run in runs.items():
        paths = sorted((run / "checkpoints").glob("*.ckpt"))
        assert {path.name for path in paths} >= {"best.ckpt", "last.ckpt"}, run
        for path in paths:
            record = torch.load(path, map_location="cpu", weights_only=True)[RECORD_KEY]
            assert plain(record), record
            assert record["model_class"] == f"lit_mlcourse.models.{model}"
            pm25 = model.startswith("regression")
            assert record["datamodule_class"] == (PM25 if pm25 else DIGITS)
            assert record["data_fingerprint"] == (pm25_fingerprint if pm25 else "sklearn.datasets.load_digits")
            assert record["seed"] == 42  # LitCLI's default seed_everything
            assert record["num_workers"] == 0 and record["torch_threads"] >= 1
            assert record["deterministic"] is False and record["world_size"] == 1
            assert set(record["versions"]) == {"python", "torch", "lightning", "lit_mlcourse"}
            assert all(isinstance(version, str) and version for version in record["versions"].values())


def test_weights_of_other_keys_or_shapes_are_named_key_by_key():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    state = {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(4), "1.weight": torch.zeros(1, 2)}
    with pytest.raises(ConfigValueError) as refused:
        check_weights("old.ckpt", {"state_dict": state}, model, "validate")
    assert str(refused.value) == (
        f"ckpt_path: old.ckpt holds other weights than torch.nn.modules.container.Sequential builds from this config: "
        f"{REFUSED}.\n"
        "  weights: 2 missing in the checkpoint: 2.bias, 2.weight\n"
        "  weights: 1 not in this model: 1.weight\n"
        "  weights: 2 of other shapes (checkpoint vs model): 0.bias (4,) vs (2,), 0.weight (4, 3) vs (2, 3)\n"
        "Use the config and data it was trained with (config.yaml in its run folder)."
    )
    model.strict_loading = False  # a model that loads what matches: only the shapes stop it
    with pytest.raises(ConfigValueError, match=r"of other shapes") as refused:
        check_weights("old.ckpt", {"state_dict": state}, model, "fit")
    assert "missing" not in str(refused.value) and "or leave out --ckpt_path to train afresh" in str(refused.value)


# The data fingerprints themselves


def test_the_pm25_fingerprint_is_the_training_csv_content_wherever_it_lies(tmp_path, pm25_data):
    trained, other = pm25_data
    moved = shutil.copytree(trained, tmp_path / "moved")
    (moved / "test.csv").write_text("id_0,PM2.5,1\n")  # predictions only: not what the model trains on
    fingerprint = PM25DataModule(data_dir=str(trained)).data_fingerprint
    assert fingerprint.startswith("sha256:") and len(fingerprint) == len("sha256:") + 16
    assert PM25DataModule(data_dir=str(moved)).data_fingerprint == fingerprint
    assert PM25DataModule(data_dir=str(other)).data_fingerprint != fingerprint


def test_the_image_folder_fingerprint_follows_files_sizes_and_classes(tmp_path):
    from image_fixtures import make_splits, save

    def fingerprint(root: Path) -> str:
        return ImageFolderDataModule(root=str(root), num_workers=0).data_fingerprint

    root = make_splits(tmp_path / "images", {"ants": 2, "bees": 2})
    original = fingerprint(root)
    assert fingerprint(shutil.copytree(root, tmp_path / "moved")) == original  # relative paths only
    save(tmp_path / "moved" / "train" / "ants" / "ants_00.png", size=(40, 40))  # same name, other size
    assert fingerprint(tmp_path / "moved") != original
    (root / "train" / "bees").rename(root / "train" / "wasps")
    (root / "val" / "bees").rename(root / "val" / "wasps")
    assert fingerprint(root) != original


def test_the_cifar_fingerprint_is_its_md5_table_and_digits_is_a_constant(tmp_path):
    from cifar_fixtures import write_cifar_folder

    def fingerprint(folder: Path, seed: int) -> str:
        table = write_cifar_folder(folder, per_batch=2, seed=seed)
        return CIFAR10DataModule(data_dir=str(folder), checksums=table, download=False).data_fingerprint

    assert fingerprint(tmp_path / "a", 0) == fingerprint(tmp_path / "moved", 0)
    assert fingerprint(tmp_path / "a", 0) != fingerprint(tmp_path / "b", 1)
    assert DigitsDataModule().data_fingerprint == DigitsDataModule(seed=3).data_fingerprint


# The refused fits as a user runs them, exit status included (started by `refused_fits` at the module's first
# test; last here, so that the tests above run meanwhile)


def test_a_cnn_checkpoint_is_refused_by_the_pm25_fit(refused_fits, judge_checkpoint, pm25_data):
    err = refused_fit(refused_fits, "cnn")
    assert list(refused_fits["cnn"].root.iterdir()) == []  # no run folder either
    fingerprint = PM25DataModule(data_dir=str(pm25_data[0])).data_fingerprint
    assert f"ckpt_path: {judge_checkpoint} is a checkpoint of another model and other data: {REFUSED}" in err
    assert f"model in the checkpoint: {CLASSIFIER}\n  model in this run:       {REGRESSOR}\n" in err
    assert f"data in the checkpoint:  {DIGITS}, fingerprint sklearn.datasets.load_digits (scikit-learn's" in err
    assert f"data in this run:        {PM25}, fingerprint {fingerprint} (sha256 of train.csv's bytes)\n" in err
    assert "weights: 9 missing in the checkpoint: input_mean, input_std, net.body.0.bias" in err
    assert "weights: 26 not in this model: net.features.0.0.weight" in err


def test_c_other_data_is_refused_by_the_resumed_fit(refused_fits, pm25_run, pm25_data):
    err = refused_fit(refused_fits, "other_data")
    trained, other = (PM25DataModule(data_dir=str(folder)).data_fingerprint for folder in pm25_data)
    assert f"ckpt_path: {pm25_run / 'checkpoints' / 'last.ckpt'} is a checkpoint of other data: {REFUSED}" in err
    assert f"model in the checkpoint: {REGRESSOR}\n  model in this run:       {REGRESSOR}\n" in err
    assert f"data in the checkpoint:  {PM25}, fingerprint {trained} (sha256 of train.csv's bytes)\n" in err
    assert f"data in this run:        {PM25}, fingerprint {other} (sha256 of train.csv's bytes)\n" in err
    assert "weights:" not in err  # the same keys and shapes: only the fingerprint tells
