"""Readers for the course's air-quality files, with errors that name the file, line and value.

``train.csv``: a header ``日期,測站,測項,0..23`` (Big5, as the course ships it) or ``date,columns,0..23``
(UTF-8 re-saves, no station column), then for each day one row per measurement with its 24 hourly
readings. ``test.csv``: no header, blocks of rows ``id_N,<measurement>,<9 hourly readings>``.

Readings: ``NR`` in RAINFALL means no rain (0.0); ``NR`` anywhere else is an error. Empty cells, the
station's invalid-reading markers (``#``, ``*``, ``x``), negative numbers and numbers beyond float32 (they would
be Inf in a tensor) are missing readings (NaN); what happens to them is the DataModule's policy.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_mlcourse.errors import DataFileNotFoundError, DataFormatError

RAINFALL = "RAINFALL"
HOURS = [str(hour) for hour in range(24)]
MISSING_MARKERS = frozenset({"", "#", "*", "x", "X"})
# Readings become float32 tensors: a larger number would become Inf there, so it counts as missing like "inf".
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Readings:
    """Hourly readings of one file: ``values[i, f, h]`` is measurement ``names[f]`` at hour ``h`` of
    block ``i`` (a day of train.csv, an id of test.csv); NaN where the reading is missing."""

    names: list[str]
    keys: list[str]  # the day ('2014-01-01') or the id ('id_0') of each block
    values: np.ndarray  # (blocks, measurements, hours) float64
    missing: int  # readings that were empty, a marker, negative or beyond float32
    encoding: str  # the codec that read the file: utf-8 (with or without BOM), big5, or the one named


def decode(path: Path, encoding: str) -> tuple[str, str]:
    """The text of ``path`` and the codec that read it; ``auto`` tries UTF-8 (with or without BOM), then Big5."""
    if not path.is_file():
        raise DataFileNotFoundError(f"{path} does not exist.")
    raw = path.read_bytes()
    # utf-8-sig reads UTF-8 with or without the byte-order mark that editors on Windows add.
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    candidates = ["utf-8-sig", "big5"] if encoding == "auto" else ["utf-8-sig" if utf8 else encoding]
    for candidate in candidates:
        try:
            return raw.decode(candidate), "utf-8" if candidate == "utf-8-sig" else candidate
        except UnicodeDecodeError as error:
            failure = error
    if encoding == "auto":
        raise DataFormatError(
            f"{path}: neither UTF-8 nor Big5 (byte {failure.start}: {raw[failure.start : failure.start + 4]!r}). "
            "Re-save the file as UTF-8 or set `data.encoding` to its encoding."
        )
    hint = "big5" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else "auto"
    raise DataFormatError(
        f"{path}: cannot be read as {encoding} (byte {failure.start}: {raw[failure.start : failure.start + 4]!r}). "
        f"The course ships train.csv in Big5: set `data.encoding: {hint}`."
    )


def parse_reading(cell: str, name: str, where: str) -> float:
    """One reading as a float; NaN when missing. ``where`` names the file, line and hour for errors."""
    cell = cell.strip()
    if cell == "NR":
        if name == RAINFALL:
            return 0.0
        raise DataFormatError(
            f"{where}: 'NR' (no rain) is only valid for {RAINFALL}, found it for {name}. "
            "Replace it with the reading, or leave the cell empty to mark it missing."
        )
    if cell in MISSING_MARKERS:
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise DataFormatError(
            f"{where}: {cell!r} is not a number (measurement {name}). Expected a reading, 'NR' for "
            f"{RAINFALL}, or an empty cell for a missing reading."
        ) from None
    return value if 0 <= value <= FLOAT32_MAX else math.nan  # NaN compares false: stays NaN


def parse_row(cells: list[str], name: str, where: str) -> list[float]:
    """The hourly readings of one row; ``where`` is ``file:line``."""
    return [parse_reading(cell, name, f"{where}, hour {hour}") for hour, cell in enumerate(cells)]


def _parse_date(cell: str, where: str) -> dt.date:
    text = cell.strip().replace("-", "/")
    try:
        year, month, day = (int(part) for part in text.split("/"))
        return dt.date(year, month, day)
    except ValueError:
        raise DataFormatError(f"{where}: {cell!r} is not a date like 2014/1/1.") from None


def _header_layout(header: list[str], path: Path) -> int:
    """Index of the measurement-name column; checks that the last 24 columns are the hours 0..23."""
    cells = [cell.strip() for cell in header]
    if "0" not in cells:
        raise DataFormatError(
            f"{path}:1: the header {','.join(cells)!r} has no hour columns 0..23. Expected "
            "'日期,測站,測項,0,...,23' or 'date,columns,0,...,23'."
        )
    first_hour = cells.index("0")
    hours = cells[first_hour:]
    if hours != HOURS:
        missing = [hour for hour in HOURS if hour not in hours]
        extra = [hour for hour in hours if hour not in HOURS]
        raise DataFormatError(
            f"{path}:1: the header must end with the hours 0..23; "
            + (f"missing hour(s) {', '.join(missing)}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unexpected column(s) {', '.join(extra)}" if extra else "")
            + ("out of order" if not missing and not extra else "")
            + "."
        )
    if first_hour not in (2, 3):
        raise DataFormatError(
            f"{path}:1: expected 2 or 3 columns before the hours (date, [station,] measurement), "
            f"found {first_hour}: {cells[:first_hour]}."
        )
    return first_hour - 1


def _stack(path: Path, blocks: dict[str, dict[str, list[float]]]) -> tuple[list[str], np.ndarray]:
    """The blocks' readings as one array, measurements in the order of the first block, which every
    block must have exactly."""
    keys = list(blocks)
    names = list(blocks[keys[0]])
    for key in keys:
        lacking = sorted(set(names) - set(blocks[key]))
        extra = sorted(set(blocks[key]) - set(names))
        if lacking or extra:
            raise DataFormatError(
                f"{path}: {key} does not have the same measurements as {keys[0]}"
                + (f"; missing {', '.join(lacking)}" if lacking else "")
                + (f"; unexpected {', '.join(extra)}" if extra else "")
                + "."
            )
    return names, np.array([[blocks[key][name] for name in names] for key in keys], dtype=np.float64)


def read_train(path: Path, encoding: str = "auto") -> Readings:
    """Read train.csv into one block of 24 hours per day, days in date order."""
    text, codec = decode(path, encoding)
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows)
    except StopIteration:
        raise DataFormatError(f"{path}: the file is empty.") from None
    name_column = _header_layout(header, path)
    days: dict[dt.date, dict[str, list[float]]] = {}
    first_line: dict[tuple[dt.date, str], int] = {}
    missing = 0
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(
                f"{path}:{line}: expected {len(header)} comma-separated fields like the header, found {len(row)}."
            )
        day = _parse_date(row[0], f"{path}:{line}")
        name = row[name_column].strip()
        if (day, name) in first_line:
            raise DataFormatError(
                f"{path}:{line}: a second row for {name} on {day} (the first is on line "
                f"{first_line[day, name]}). Remove the duplicate."
            )
        first_line[day, name] = line
        values = parse_row(row[name_column + 1 :], name, f"{path}:{line}")
        missing += sum(math.isnan(value) for value in values)
        days.setdefault(day, {})[name] = values
    if not days:
        raise DataFormatError(f"{path}: no data rows after the header.")
    blocks = {day.isoformat(): days[day] for day in sorted(days)}
    names, values = _stack(path, blocks)
    return Readings(names, list(blocks), values, missing, codec)


def read_test(path: Path, encoding: str = "auto") -> Readings:
    """Read test.csv (no header) into one block per id, ids in file order."""
    text, codec = decode(path, encoding)
    rows = csv.reader(io.StringIO(text, newline=""))
    blocks: dict[str, dict[str, list[float]]] = {}
    width = None
    missing = 0
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if width is None:
            width = len(row)
            if width < 3:
                raise DataFormatError(f"{path}:{line}: expected 'id_N,<measurement>,<readings>...', got {row}.")
        if len(row) != width:
            raise DataFormatError(
                f"{path}:{line}: expected {width} comma-separated fields like the first row, found {len(row)}."
            )
        key, name = row[0].strip(), row[1].strip()
        block = blocks.setdefault(key, {})
        if name in block:
            raise DataFormatError(f"{path}:{line}: a second row for {name} in {key}. Remove the duplicate.")
        values = parse_row(row[2:], name, f"{path}:{line}")
        missing += sum(math.isnan(value) for value in values)
        block[name] = values
    if not blocks:
        raise DataFormatError(f"{path}: the file has no rows.")
    names, values = _stack(path, blocks)
    return Readings(names, list(blocks), values, missing, codec)
