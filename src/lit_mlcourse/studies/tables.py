"""A study's results as a CSV file and as a plain-text table (aligned columns, one line per run, the same in a
terminal and in a log file)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` (dicts with the same keys, in column order) as CSV; a missing value is an empty field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{key: "" if value is None else value for key, value in row.items()} for row in rows])


def format_table(rows: list[dict[str, Any]]) -> str:
    """``rows`` as aligned text: a header line, then one line per row; floats to 4 significant digits."""
    columns = list(rows[0])
    cells = [columns, *([_cell(row[column]) for column in columns] for row in rows)]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in cells)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def shown(value: Any) -> str:
    """A figure in a progress line: 4 significant digits, ``-`` for none."""
    return "-" if value is None else f"{value:.4g}"
