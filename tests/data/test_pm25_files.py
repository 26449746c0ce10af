"""Parsing the course's PM2.5 files in every accepted format, and the errors for bad ones."""

import math

import numpy as np
import pytest
from pm25_fixtures import NAMES, PM25, RAIN, course_days, random_readings, train_lines, write_test, write_train

from lit_mlcourse.data.pm25_files import read_test, read_train
from lit_mlcourse.errors import DataFileNotFoundError, DataFormatError


@pytest.mark.parametrize(
    ("style", "encoding", "newline"),
    [("big5", "big5", "\n"), ("utf8", "utf-8", "\n"), ("utf8", "utf-8-sig", "\r\n"), ("big5", "utf-8", "\r\n")],
)
def test_every_accepted_format_reads_the_same_values(tmp_path, style, encoding, newline):
    days = course_days(months=1, days_per_month=3)
    values = random_readings(len(days))
    path = write_train(tmp_path, days, values, style=style, encoding=encoding, newline=newline)
    readings = read_train(path)
    assert readings.names == NAMES
    assert readings.keys == ["2014-01-01", "2014-01-02", "2014-01-03"]
    np.testing.assert_array_equal(readings.values, values)  # NR in RAINFALL came back as 0.0
    assert readings.missing == 0


def test_missing_readings_become_nan_and_are_counted(tmp_path):
    days = course_days(months=1, days_per_month=2)
    lines = train_lines(days, random_readings(len(days)))
    fields = lines[1 + PM25].split(",")
    fields[3:9] = ["", "-1", "#", "x", "*", "1e39"]  # 1e39: Inf as float32
    lines[1 + PM25] = ",".join(fields)
    readings = read_train(write_train(tmp_path, lines=lines))
    assert np.isnan(readings.values[0, PM25, :6]).all()
    assert readings.missing == 6
    assert not np.isnan(np.delete(readings.values[0, PM25], range(6))).any()


def test_days_are_sorted_and_rows_may_come_in_any_order(tmp_path):
    days = course_days(months=1, days_per_month=2)
    values = random_readings(2)
    lines = train_lines(days, values)
    shuffled = [lines[0], *lines[19:], *reversed(lines[1:19])]
    readings = read_train(write_train(tmp_path, lines=shuffled))
    assert readings.keys == ["2014-01-01", "2014-01-02"]
    order = [readings.names.index(name) for name in NAMES]
    np.testing.assert_array_equal(readings.values[:, order], values)


def test_the_real_course_file(pm25_dir):
    readings = read_train(pm25_dir / "train.csv")
    assert readings.values.shape == (240, 18, 24)  # 12 months x 20 days
    assert readings.names[PM25] == "PM2.5" and readings.names == NAMES
    assert readings.missing == 113  # negative readings in the course's file
    assert (readings.values[:, RAIN] >= 0).all()


def test_the_real_test_file(pm25_dir):
    test = read_test(pm25_dir / "test.csv")
    assert test.keys[:2] == ["id_0", "id_1"] and len(test.keys) == 240
    assert test.values.shape == (240, 18, 9)


def test_test_file_blocks(tmp_path):
    path, values = write_test(tmp_path, ids=3)
    test = read_test(path)
    assert test.keys == ["id_0", "id_1", "id_2"]
    np.testing.assert_array_equal(test.values, values)


# --- bad input: each error names the file (and line) and says what to do -------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=r"train\.csv does not exist"):
        read_train(tmp_path / "train.csv")


def test_big5_file_read_as_utf8_says_to_use_big5(tmp_path):
    path = write_train(tmp_path, course_days(1, 2), random_readings(2), style="big5", encoding="big5")
    with pytest.raises(DataFormatError, match=r"train.csv: cannot be read as utf-8 \(byte 0: .*encoding: big5"):
        read_train(path, encoding="utf-8")
    readings = read_train(path, encoding="auto")  # the default: auto-detection reads it (and says so, see pm25.py)
    assert readings.names == NAMES and readings.encoding == "big5"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ragged_row_names_file_and_line(tmp_path, newline):
    lines = train_lines(course_days(1, 8), random_readings(8))
    lines[136] += ",3.5"  # line 137 of the file
    path = write_train(tmp_path, lines=lines, newline=newline)
    with pytest.raises(DataFormatError, match=rf"^{path}:137: expected 27 comma-separated fields .* found 28"):
        read_train(path)


def test_nr_outside_rainfall_is_an_error(tmp_path):
    lines = train_lines(course_days(1, 2), random_readings(2))
    fields = lines[1 + PM25].split(",")
    fields[10] = "NR"
    lines[1 + PM25] = ",".join(fields)
    path = write_train(tmp_path, lines=lines)
    with pytest.raises(
        DataFormatError,
        match=rf"{path}:{2 + PM25}, hour 7: 'NR' \(no rain\) is only valid for RAINFALL, found it for PM2.5",
    ):
        read_train(path)


def test_text_in_a_reading_is_an_error(tmp_path):
    lines = train_lines(course_days(1, 2), random_readings(2))
    lines[3] = lines[3].replace(lines[3].split(",")[3], "abc", 1)
    path = write_train(tmp_path, lines=lines)
    with pytest.raises(DataFormatError, match=rf"{path}:4, hour 0: 'abc' is not a number"):
        read_train(path)


def test_header_missing_hour_23(tmp_path):
    lines = train_lines(course_days(1, 2), random_readings(2))
    lines = [",".join(line.split(",")[:-1]) for line in lines]
    path = write_train(tmp_path, lines=lines)
    with pytest.raises(
        DataFormatError, match=rf"{path}:1: the header must end with the hours 0..23; missing hour\(s\) 23"
    ):
        read_train(path)


def test_duplicate_row(tmp_path):
    lines = train_lines(course_days(1, 2), random_readings(2))
    lines.append(lines[3])
    path = write_train(tmp_path, lines=lines)
    with pytest.raises(
        DataFormatError, match=rf"{path}:{len(lines)}: a second row for CO on 2014-01-01 \(the first is on line 4\)"
    ):
        read_train(path)


def test_a_day_lacking_a_measurement(tmp_path):
    lines = train_lines(course_days(1, 2), random_readings(2))
    del lines[19 + 5]  # NO2 of the second day
    path = write_train(tmp_path, lines=lines)
    with pytest.raises(
        DataFormatError, match="2014-01-02 does not have the same measurements as 2014-01-01; missing NO2"
    ):
        read_train(path)


def test_negative_and_nonfinite_are_missing_not_values():
    from lit_mlcourse.data.pm25_files import parse_reading

    assert math.isnan(parse_reading("-3", "PM2.5", "f:1"))
    assert math.isnan(parse_reading("inf", "PM2.5", "f:1"))
    assert parse_reading(" 12.5 ", "PM2.5", "f:1") == 12.5
    assert parse_reading("NR", "RAINFALL", "f:1") == 0.0


def test_utf8_with_byte_order_mark_when_utf8_is_named(tmp_path):
    path = write_train(tmp_path, course_days(1, 2), random_readings(2), style="utf8", encoding="utf-8-sig")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert read_train(path, encoding="utf-8").keys == ["2014-01-01", "2014-01-02"]
    test_path, _ = write_test(tmp_path)
    test_path.write_bytes(b"\xef\xbb\xbf" + test_path.read_bytes())
    assert read_test(test_path, encoding="utf-8").keys[0] == "id_0"
