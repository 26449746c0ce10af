"""Small synthetic course files in every accepted PM2.5 format (tests never use the network)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

NAMES = [
    "AMB_TEMP", "CH4", "CO", "NMHC", "NO", "NO2", "NOx", "O3", "PM10", "PM2.5",
    "RAINFALL", "RH", "SO2", "THC", "WD_HR", "WIND_DIREC", "WIND_SPEED", "WS_HR",
]  # fmt: skip
PM25 = NAMES.index("PM2.5")
RAIN = NAMES.index("RAINFALL")


def course_days(months: int = 2, days_per_month: int = 20, year: int = 2014) -> list[dt.date]:
    """The course layout: the first ``days_per_month`` days of each month."""
    return [dt.date(year, month, day) for month in range(1, months + 1) for day in range(1, days_per_month + 1)]


def random_readings(days: int, seed: int = 0) -> np.ndarray:
    """Plausible readings (days, 18, 24): positive, RAINFALL mostly 0 (written as NR)."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.uniform(1, 60, size=(days, len(NAMES), 24)), 1)
    values[:, RAIN] = np.where(rng.uniform(size=(days, 24)) < 0.8, 0.0, values[:, RAIN])
    return values


def cell(value: float, name: str) -> str:
    if name == "RAINFALL" and value == 0:
        return "NR"
    if np.isnan(value):
        return ""
    return f"{value:g}"


def train_lines(days: list[dt.date], values: np.ndarray, style: str = "big5", names: list[str] = NAMES) -> list[str]:
    """The rows of a train.csv: ``style`` big5 (日期,測站,測項 header, station column) or ``utf8``
    (``date,columns`` header, no station)."""
    hours = ",".join(str(hour) for hour in range(24))
    header = f"日期,測站,測項,{hours}" if style == "big5" else f"date,columns,{hours}"
    lines = [header]
    for day, block in zip(days, values, strict=True):
        date = f"{day.year}/{day.month}/{day.day}"
        for name, row in zip(names, block, strict=True):
            prefix = f"{date},豐原,{name}" if style == "big5" else f"{date},{name}"
            lines.append(prefix + "," + ",".join(cell(value, name) for value in row))
    return lines


def write_train(
    folder: Path,
    days: list[dt.date] | None = None,
    values: np.ndarray | None = None,
    style: str = "big5",
    encoding: str = "big5",
    newline: str = "\n",
    lines: list[str] | None = None,
) -> Path:
    days = days if days is not None else course_days()
    values = values if values is not None else random_readings(len(days))
    lines = lines if lines is not None else train_lines(days, values, style)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.csv"
    path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    return path


def write_test(folder: Path, ids: int = 4, hours: int = 9, seed: int = 1) -> tuple[Path, np.ndarray]:
    """A test.csv (no header) of ``ids`` blocks; returns its path and readings (ids, 18, hours)."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.uniform(1, 60, size=(ids, len(NAMES), hours)), 1)
    values[:, RAIN] = 0.0
    lines = [
        f"id_{index}," + name + "," + ",".join(cell(value, name) for value in row)
        for index in range(ids)
        for name, row in zip(NAMES, values[index], strict=True)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "test.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, values
