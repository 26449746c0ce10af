"""Bad input through `lit`: each error names the key or file (and line) and what to do; exit status 2;
config mistakes stop before any run folder exists."""

import re

import pytest
from conftest import CONFIGS
from pm25_fixtures import PM25, course_days, random_readings, train_lines, write_train

from lit_mlcourse.cli import main


def lit_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def quickstart(tmp_path, *args: str) -> list[str]:
    return ["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.default_root_dir", str(tmp_path / "runs"),
            *args]  # fmt: skip


def pm25(tmp_path, data_dir, *args: str) -> list[str]:
    return ["fit", "--config", str(CONFIGS / "pm25_linear.yaml"), "--data.data_dir", str(data_dir),
            "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.max_epochs", "1", *args]  # fmt: skip


def test_typo_in_a_config_file_names_file_line_and_the_right_key(tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text("trainer:\n  accelerator: cpu\n  max_epoch: 3\n")
    err = lit_error(capsys, *quickstart(tmp_path, "--config", str(typo)))
    assert "trainer.max_epoch: unknown key" in err
    assert f"set in {typo}:3" in err
    assert "did you mean 'trainer.max_epochs'?" in err
    assert not (tmp_path / "runs").exists()


def test_typo_in_a_model_argument_lists_what_the_model_takes(tmp_path, capsys, pm25_dir):
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  init_args:\n    hiden: [64, 32]\n")
    err = lit_error(capsys, *pm25(tmp_path, pm25_dir, "--config", str(typo)))
    assert "model.hiden: unknown key for Regressor (it takes: input_shape, input_hours, hidden," in err
    assert f"set in {typo}:3" in err and "did you mean 'model.hidden'?" in err


def test_typo_on_the_command_line(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--trainer.max_epoch", "3"))
    assert "trainer.max_epoch: unknown option" in err and "set on the command line" in err
    assert "did you mean 'trainer.max_epochs'?" in err


def test_a_value_of_the_wrong_type(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epochs: ten\n")
    err = lit_error(capsys, *quickstart(tmp_path, "--config", str(bad)))
    assert "trainer.max_epochs: expected int, got 'ten'" in err and f"set in {bad}:2" in err


def test_a_misspelt_optimizer_class(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--optimizer", "torch.optim.Adamw"))
    assert "model.optimizer: torch.optim.Adamw does not exist" in err
    assert "did you mean 'torch.optim.AdamW'?" in err


@pytest.mark.parametrize("where", ["command line", "file"])
def test_negative_learning_rate(tmp_path, capsys, where):
    if where == "file":
        bad = tmp_path / "lr.yaml"
        bad.write_text("model:\n  init_args:\n    optimizer:\n      init_args:\n        lr: -0.01\n")
        args, place = ["--config", str(bad)], f"set in {bad}:5"
    else:
        args, place = ["--optimizer.lr", "-0.01"], "set on the command line"
    err = lit_error(capsys, *quickstart(tmp_path, *args))
    assert f"model.optimizer.lr = -0.01 ({place}): the learning rate must be a finite number > 0" in err
    assert not (tmp_path / "runs").exists()


def test_zero_batch_size(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--data.batch_size", "0"))
    assert "data.batch_size: Not of type PositiveInt: 0 does not conform to restriction v>0" in err


def test_warmup_longer_than_the_training(tmp_path, capsys):
    warmup = tmp_path / "warmup.yaml"
    warmup.write_text(
        "model:\n  init_args:\n    lr_scheduler:\n      init_args: {warmup_fraction: 0, warmup_steps: 500}\n"
    )
    err = lit_error(capsys, *quickstart(tmp_path, "--trainer.max_epochs", "1", "--config", str(warmup)))
    assert re.search(
        r"warmup \(500 optimizer steps\) must be shorter than the whole training \(20 optimizer steps", err
    )


def test_missing_data_file_says_where_it_looked(tmp_path, capsys):
    err = lit_error(capsys, *pm25(tmp_path, tmp_path / "nowhere"))
    assert f"{tmp_path / 'nowhere' / 'train.csv'} does not exist (looked in data_dir=" in err
    assert "Put the course's train.csv and test.csv there" in err


def test_unknown_feature_lists_the_valid_names(tmp_path, capsys, pm25_dir):
    err = lit_error(capsys, *pm25(tmp_path, pm25_dir, "--data.features", "[PM2.5, PM1O]"))
    assert "unknown measurement(s) 'PM1O'" in err and "PM10, PM2.5, RAINFALL" in err


def test_big5_file_read_as_utf8(tmp_path, capsys):
    write_train(tmp_path / "data", course_days(1, 2), random_readings(2), style="big5", encoding="big5")
    err = lit_error(capsys, *pm25(tmp_path, tmp_path / "data", "--data.encoding", "utf-8"))
    assert "train.csv: cannot be read as utf-8" in err and "set `data.encoding: big5`" in err


def test_ragged_row_names_file_and_line(tmp_path, capsys):
    lines = train_lines(course_days(1, 2), random_readings(2))
    lines[9] += ",1"
    path = write_train(tmp_path / "data", lines=lines)
    err = lit_error(capsys, *pm25(tmp_path, tmp_path / "data"))
    assert f"{path}:10: expected 27 comma-separated fields like the header, found 28" in err


def test_nr_outside_rainfall(tmp_path, capsys):
    lines = train_lines(course_days(1, 2), random_readings(2))
    lines[1 + PM25] = lines[1 + PM25].rsplit(",", 1)[0] + ",NR"
    path = write_train(tmp_path / "data", lines=lines)
    err = lit_error(capsys, *pm25(tmp_path, tmp_path / "data"))
    assert f"{path}:{2 + PM25}, hour 23: 'NR' (no rain) is only valid for RAINFALL, found it for PM2.5" in err


def test_model_and_data_of_different_tasks(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--model", "Regressor"))
    assert "Regressor needs input_shape, input_hours, standardization from the data, but DigitsDataModule" in err


def test_test_subcommand_without_a_test_set(tmp_path, capsys, pm25_dir):
    args = pm25(tmp_path, pm25_dir)
    args[0] = "test"
    args = [arg for arg in args if arg not in ("--trainer.max_epochs", "1")]
    err = lit_error(capsys, *args)
    assert "PM25DataModule has no labelled test set: use `lit validate`" in err


def test_a_misspelt_datamodule_class(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--data", "DigitDataModule"))
    assert "data: DigitDataModule is not a known class" in err and "did you mean 'DigitsDataModule'?" in err


def test_conflicting_schedule_arguments_fail_before_any_run_folder(tmp_path, capsys):
    # the quick start sets warmup_fraction; warmup_steps on top of it is a contradiction
    err = lit_error(capsys, *quickstart(tmp_path, "--lr_scheduler.warmup_steps", "50"))
    assert "WarmupDecay: give warmup_steps (50) or warmup_fraction (0.05), not both; set the other to 0." in err
    assert not (tmp_path / "runs").exists()


def test_custom_monitor_without_a_direction(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--checkpoint.monitor", "val/wobble"))
    assert "checkpoint.monitor='val/wobble': say whether higher or lower is better" in err


def test_checkpoint_from_other_inputs_is_refused_with_both_shapes(tmp_path, capsys, pm25_dir):
    main(pm25(tmp_path, pm25_dir, "--trainer.limit_train_batches", "2"))
    best = next((tmp_path / "runs").rglob("best.ckpt"))
    args = pm25(tmp_path, pm25_dir, "--data.features", "null", "--data.hours", "null", "--ckpt_path", str(best))
    args[0] = "predict"
    err = lit_error(capsys, *[arg for arg in args if arg not in ("--trainer.max_epochs", "1")])
    assert f"{best} was trained with input_shape=[9, 10], but the data now gives input_shape=[9, 18]" in err


def test_a_bad_value_found_while_building_the_model(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--model.label_smoothing", "1.5"))
    assert err.startswith("lit: error: model.label_smoothing=1.5 must be in [0, 1).")
    assert "Union subtypes" not in err


def test_a_missing_required_key_is_named_with_its_file(tmp_path, capsys):
    gan = tmp_path / "gan.yaml"
    gan.write_text("model:\n  class_path: lit_mlcourse.models.GAN\n  init_args:\n    judge: judge.ckpt\n")
    err = lit_error(capsys, "fit", "--config", str(gan), "--data", "lit_mlcourse.data.DigitsDataModule",
                    "--trainer.default_root_dir", str(tmp_path / "runs"))  # fmt: skip
    assert "model: the following arguments are required: generator, discriminator" in err
    assert f"set in {gan}:3" in err
    assert not (tmp_path / "runs").exists()


def test_a_misspelt_model_class(tmp_path, capsys):
    err = lit_error(capsys, *quickstart(tmp_path, "--model.class_path", "lit_mlcourse.models.Clasifier"))
    assert "did you mean 'lit_mlcourse.models.ImageClassifier'?" in err
    assert not (tmp_path / "runs").exists()


def test_a_typo_in_a_run_logging_to_wandb_starts_no_wandb_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    typo = tmp_path / "typo.yaml"
    typo.write_text("trainer:\n  max_epoch: 3\n")
    err = lit_error(capsys, *quickstart(tmp_path, "--config", str(CONFIGS / "logger" / "wandb.yaml"), "--config",
                                        str(typo)))  # fmt: skip
    assert f"set in {typo}:2" in err and "did you mean 'trainer.max_epochs'?" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["typo.yaml"]  # no runs/, no wandb/


def test_a_run_name_that_leaves_the_root_is_refused(tmp_path, capsys):
    (tmp_path / "work").mkdir()
    err = lit_error(capsys, *quickstart(tmp_path / "work", "--name", "../../outside"))
    assert "name='../../outside' is not one folder name" in err and "such as 'outside'" in err
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["work"]  # no run folder anywhere


@pytest.mark.parametrize(
    ("name", "version", "key"),
    [("/tmp/abs", None, "name='/tmp/abs'"), ("..", None, "name='..'"),
     ("ok", "../../v", "trainer.logger.init_args.version='../../v'")],
)  # fmt: skip
def test_run_folder_names_stay_one_folder_deep(tmp_path, name, version, key):
    from jsonargparse import Namespace

    from lit_mlcourse.errors import ConfigValueError
    from lit_mlcourse.runs import choose_run_folder

    logger = Namespace(class_path="lightning.pytorch.loggers.CSVLogger", init_args=Namespace(version=version))
    config = Namespace(name=name, trainer=Namespace(default_root_dir=str(tmp_path), logger=[logger]))
    with pytest.raises(ConfigValueError, match=re.escape(key) + " is not one folder name"):
        choose_run_folder(config)
