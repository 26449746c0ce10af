"""What a run leaves behind for people and scripts: a short terminal summary and ``summary.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L


def as_float(value: Any) -> float | None:
    """A logged value (tensor or number) as a float; ``None`` when there is none."""
    if value is None:
        return None
    return float(value.item() if hasattr(value, "item") else value)


def run_summary(trainer: L.Trainer, metrics: dict[str, Any], checkpoint: str | None = None) -> dict[str, Any]:
    """The summary of a finished run: run folder, best checkpoint, its monitored value and the final
    metrics. ``checkpoint`` names the evaluated checkpoint when the run did not train."""
    callback = trainer.checkpoint_callback
    best_path = (callback.best_model_path if callback else "") or checkpoint or ""
    return {
        "run_dir": str(trainer.log_dir),
        "best_model_path": str(best_path),
        "monitor": callback.monitor if callback else None,
        "best_score": as_float(callback.best_model_score) if callback else None,
        "metrics": {key: as_float(value) for key, value in sorted(metrics.items())},
    }


def write_json(path: Path, content: dict[str, Any]) -> None:
    """``content`` as indented JSON; NaN and infinities become null (JSON has none)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(content), indent=2) + "\n")


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("run folder", summary["run_dir"])]
    if summary.get("best_model_path"):
        rows.append(("checkpoint", summary["best_model_path"]))
    if summary.get("best_score") is not None:
        rows.append((f"best {summary['monitor']}", f"{summary['best_score']:.5g}"))
    rows += [(key, "-" if value is None else f"{value:.5g}") for key, value in summary["metrics"].items()]
    return rows


def print_summary(title: str, summary: dict[str, Any]) -> None:
    """A compact table in a terminal; ``key: value`` lines (never wrapped) in a log file."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        lines = [title, *(f"  {key}: {value}" for key, value in summary_rows(summary))]
        print("\n".join(lines), flush=True)
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in summary_rows(summary):
        table.add_row(key, value)
    console.print(table)
