"""Windows, splits, standardization and the predict set of the PM2.5 DataModule."""

import datetime as dt

import numpy as np
import pytest
import torch
from pm25_fixtures import NAMES, PM25, random_readings, train_lines, write_test, write_train
from sklearn.model_selection import KFold

from lit_mlcourse.data import PM25DataModule
from lit_mlcourse.errors import DataFileNotFoundError, DataFormatError


def month_coded(days: list[dt.date]) -> np.ndarray:
    """Readings whose PM2.5 is 1000 * month + hour-of-segment, so a window's month can be read back."""
    values = random_readings(len(days))
    for index, day in enumerate(days):
        first = next(i for i, other in enumerate(days) if other.month == day.month)
        values[index, PM25] = 1000 * day.month + (index - first) * 24 + np.arange(24)
    return values


def module(folder, **kwargs) -> PM25DataModule:
    return PM25DataModule(data_dir=str(folder), **kwargs)


def test_windows_never_cross_a_month_boundary(tmp_path):
    days = [dt.date(2014, month, day) for month in (1, 2) for day in (1, 2)]
    write_train(tmp_path, days, month_coded(days))
    dm = module(tmp_path, window=9)
    windows = dm.windows
    assert len(windows.targets) == 2 * (48 - 9)
    inputs = windows.inputs[:, :, PM25]
    months = np.floor(np.concatenate([inputs, windows.targets[:, None]], axis=1) / 1000)
    assert (months == months[:, :1]).all()
    # each target is the hour right after its window
    np.testing.assert_array_equal(windows.targets, inputs[:, -1] + 1)


def test_a_hole_in_the_calendar_splits_the_month(tmp_path):
    days = [dt.date(2014, 1, 1), dt.date(2014, 1, 2), dt.date(2014, 1, 4)]
    write_train(tmp_path, days, random_readings(3))
    assert len(module(tmp_path).windows.targets) == (48 - 9) + (24 - 9)


def test_chronological_hold_out_validates_on_the_latest_windows_of_each_month(tmp_path):
    days = [dt.date(2014, month, day) for month in (1, 2) for day in range(1, 6)]
    write_train(tmp_path, days, month_coded(days))
    dm = module(tmp_path, val_fraction=0.2)
    train, val = dm.split
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == len(dm.windows.targets)
    targets = dm.windows.targets
    for month in (1, 2):
        month_train = targets[train][np.floor(targets[train] / 1000) == month]
        month_val = targets[val][np.floor(targets[val] / 1000) == month]
        assert month_val.min() > month_train.max()
        assert len(month_val) == round(0.2 * (len(month_train) + len(month_val)))


def test_folds_follow_the_fixed_protocol(tmp_path):
    write_train(tmp_path)
    n = len(module(tmp_path).windows.targets)
    expected = list(KFold(5, shuffle=True, random_state=0).split(np.arange(n)))
    for fold in range(5):
        train, val = module(tmp_path, num_folds=5, fold=fold).split
        np.testing.assert_array_equal(train, expected[fold][0])
        np.testing.assert_array_equal(val, expected[fold][1])


@pytest.mark.parametrize("split", [{}, {"num_folds": 4, "fold": 2}])
def test_standardization_never_sees_validation_windows(tmp_path, split):
    write_train(tmp_path)
    clean = module(tmp_path, **split).standardization
    poisoned = module(tmp_path, **split)
    _, val = poisoned.split
    poisoned.windows.inputs[val] = 1e6
    poisoned.windows.targets[val] = 1e6
    assert poisoned.standardization == clean
    train, _ = poisoned.split
    inputs = poisoned.windows.inputs[train].reshape(-1, len(NAMES))
    np.testing.assert_allclose(clean["mean"], inputs.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(clean["target_std"], poisoned.windows.targets[train].std(), rtol=1e-5)


def test_missing_inputs_are_interpolated_and_missing_targets_dropped(tmp_path):
    days = [dt.date(2014, 1, 1), dt.date(2014, 1, 2)]
    values = random_readings(2)
    values[0, 2, 5] = np.nan  # a CO reading
    values[0, PM25, 20] = np.nan  # a PM2.5 reading: a target once, an input of 9 windows
    write_train(tmp_path, days, values)
    interpolated = module(tmp_path, missing="interpolate").windows
    assert interpolated.dropped_target == 1 and interpolated.dropped_inputs == 0
    assert len(interpolated.targets) == 48 - 9 - 1
    assert np.isfinite(interpolated.inputs).all()
    first = interpolated.inputs[0, 5, 2]
    assert first == pytest.approx((values[0, 2, 4] + values[0, 2, 6]) / 2)
    dropped = module(tmp_path, missing="drop").windows
    touching = {start for start in range(48 - 9) if start <= 5 < start + 9 or start <= 20 < start + 9}
    assert dropped.dropped_target == 1
    assert len(dropped.targets) == 48 - 9 - len(touching | {20 - 9})


def test_feature_selection_and_input_shape(tmp_path):
    write_train(tmp_path)
    dm = module(tmp_path, features=["PM2.5", "PM10", "RH"], window=6)
    assert dm.input_shape == (6, 3)
    assert dm.windows.inputs.shape[1:] == (6, 3)
    dm.setup("fit")
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape[1:] == (6, 3) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_unknown_feature_lists_the_valid_names(tmp_path):
    write_train(tmp_path)
    with pytest.raises(DataFormatError, match=r"unknown measurement\(s\) 'PM25'.*has: AMB_TEMP, CH4, .*PM2.5"):
        _ = module(tmp_path, features=["PM25", "RH"]).input_shape


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=rf"{tmp_path}/train.csv does not exist .*--data.data_dir"):
        _ = module(tmp_path).input_shape


def test_predict_set_from_test_csv(tmp_path):
    write_train(tmp_path)
    path, values = write_test(tmp_path, ids=3)
    lines = path.read_text().splitlines()
    fields = lines[2].split(",")  # id_0 CO
    fields[2 + 4] = "-1"
    lines[2] = ",".join(fields)
    lines[3] = "id_0,NMHC," + ",".join([""] * 9)  # a measurement missing for every hour
    path.write_text("\n".join(lines) + "\n")
    dm = module(tmp_path)
    dm.setup("predict")
    assert dm.predict_ids == ["id_0", "id_1", "id_2"]
    (x,) = next(iter(dm.predict_dataloader()))
    assert x.shape == (3, 9, 18) and torch.isfinite(x).all()
    assert x[0, 4, 2] == pytest.approx((values[0, 2, 3] + values[0, 2, 5]) / 2)
    assert torch.allclose(x[0, :, 3], torch.tensor(dm.standardization["mean"][3], dtype=torch.float32))


def test_real_data_sizes(pm25_dir):
    dm = PM25DataModule(data_dir=str(pm25_dir), num_folds=5, fold=0)
    assert dm.input_shape == (9, 18)
    assert len(dm.windows.targets) == 5600  # of 12 * 471 = 5652, those with a valid target
    assert dm.windows.candidates == 12 * 471
    train, val = dm.split
    assert (len(train), len(val)) == (4480, 1120)


def test_hours_per_measurement(tmp_path):
    write_train(tmp_path)
    dm = module(tmp_path, features=["PM2.5", "PM10", "RH"], hours={"*": 3, "PM2.5": 9})
    assert dm.input_hours == [9, 3, 3]
    assert module(tmp_path, features=["PM2.5", "RH"]).input_hours == [9, 9]


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"PM10": 3}, r"data.hours names 'PM10', which are not inputs; the inputs are: PM2.5, RH"),
        ({"*": 10}, "10 is outside 1..window=9"),
    ],
)
def test_bad_hours(tmp_path, hours, message):
    from lit_mlcourse.errors import ConfigValueError

    write_train(tmp_path)
    with pytest.raises(ConfigValueError, match=message):
        _ = module(tmp_path, features=["PM2.5", "RH"], hours=hours).input_hours


def test_interpolation_never_uses_the_hour_to_predict(tmp_path):
    days = [dt.date(2014, 1, 1), dt.date(2014, 1, 2)]
    values = random_readings(2)
    values[0, PM25, 8] = np.nan  # the last input hour of window 0, whose target is hour 9
    values[0, PM25, 9] = 1e4
    write_train(tmp_path, days, values)
    windows = module(tmp_path).windows
    assert windows.targets[0] == 1e4
    assert windows.inputs[0, 8, PM25] == pytest.approx(values[0, PM25, 7])  # the nearest earlier reading
    # for window 1, hour 9 is a past input: hour 8 lies between two readings
    assert windows.inputs[1, 7, PM25] == pytest.approx((values[0, PM25, 7] + 1e4) / 2)


def test_a_measurement_missing_for_a_whole_window_takes_its_last_earlier_reading(tmp_path):
    days = [dt.date(2014, 1, 1), dt.date(2014, 1, 2)]
    values = random_readings(2)
    values[0, 2, 10:20] = np.nan  # CO missing for 10 hours
    write_train(tmp_path, days, values)
    windows = module(tmp_path).windows
    assert windows.dropped_inputs == 0 and len(windows.targets) == 48 - 9
    np.testing.assert_allclose(windows.inputs[10, :, 2], values[0, 2, 9])  # hours 10..18: all missing
    first = module(tmp_path, missing="drop").windows
    assert first.dropped_inputs == len({s for s in range(39) if s + 9 > 10 and s < 20})


def test_the_default_encoding_reads_big5_and_logs_what_it_detected_and_dropped(tmp_path, caplog):
    days = [dt.date(2014, 1, 1), dt.date(2014, 1, 2)]
    values = random_readings(2)
    values[0, PM25, [5, 20]] = np.nan  # an input of 9 windows (interpolated) and a target
    write_train(tmp_path, days, values, encoding="big5")
    assert len(module(tmp_path).windows.targets) == 48 - 9 - 1
    assert (
        "train.csv read as big5 (data.encoding: auto); 2 missing readings (policy: interpolate); 38 of 39 windows "
        "kept (1 with a missing target, 0 with a missing input)"
    ) in caplog.text


def test_no_nan_or_inf_reaches_a_tensor(tmp_path):
    days = [dt.date(2014, 1, 1), dt.date(2014, 1, 2)]
    lines = train_lines(days, random_readings(2))
    lines[1 + PM25] = lines[1 + PM25].replace(lines[1 + PM25].split(",")[5], "1e39", 1)  # Inf as float32
    write_train(tmp_path, lines=lines)
    write_test(tmp_path)
    dm = module(tmp_path)
    for stage in ("fit", "predict"):
        dm.setup(stage)
    assert all(torch.isfinite(tensor).all() for dataset in dm.datasets.values() for tensor in dataset.tensors)
    poisoned = module(tmp_path)
    train, _ = poisoned.split
    poisoned.windows.inputs[train[3], 2, 1] = np.inf  # what setup's check is there for
    with pytest.raises(DataFormatError, match=r"1 of \d+ train samples from train.csv hold NaN or Inf .*sample 3\)"):
        poisoned.setup("fit")
