"""``lit cv``: k-fold cross-validation, one freshly initialised model and trainer per fold."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lit_mlcourse.config_checks import import_class
from lit_mlcourse.studies.variant_runs import fit_variant
from lit_mlcourse.summary import as_float, write_json

if TYPE_CHECKING:
    from lit_mlcourse.cli import LitCLI


def run_cross_validation(cli: LitCLI, folds: int) -> dict[str, Any]:
    """Fit fold 0..folds-1 (the DataModule's ``num_folds`` / ``fold``), each into
    ``<run folder>/fold_<k>``, and write ``cv_summary.json`` in the run folder.

    Each fold is scored by the monitored metric at the end of training: the held-out fold is the
    validation set, so picking the best epoch on it would report an optimistic figure. The best-epoch
    value is recorded beside it.
    """
    base = cli.run_config
    data_class = import_class(base.data.class_path)
    if not {"num_folds", "fold"} <= set(inspect.signature(data_class.__init__).parameters):
        cli.parser.error(
            f"`lit cv` needs a DataModule with `num_folds` and `fold` arguments; {data_class.__name__} has none."
        )
    if folds < 2:
        cli.parser.error(f"--folds {folds}: cross-validation needs at least 2 folds.")
    monitor = base.checkpoint.monitor
    results = []
    for fold in range(folds):
        config = base.clone()
        config.data.init_args.num_folds = int(folds)  # a plain int: PositiveInt does not dump to YAML
        config.data.init_args.fold = fold
        trainer, summary = fit_variant(cli, config, Path(cli.run_dir) / f"fold_{fold}")  # the same seed every fold
        score = as_float(trainer.callback_metrics.get(monitor))
        results.append({"fold": fold, "score": score, "best": summary["best_score"], "run_dir": summary["run_dir"]})
        print(
            f"fold_{fold} of {folds}: {monitor} {score:.4f} at the end (best epoch {summary['best_score']:.4f})",
            flush=True,
        )
    return _report(cli, base, results)


def _report(cli: LitCLI, base: Any, results: list[dict[str, Any]]) -> dict[str, Any]:
    scores = np.array([result["score"] for result in results], dtype=float)
    bests = np.array([result["best"] for result in results], dtype=float)
    report = {
        "monitor": base.checkpoint.monitor,
        "mode": base.checkpoint.mode,
        "score": "monitored value at the end of training, per fold",
        "folds": results,
        "mean": float(scores.mean()),
        "std": float(scores.std()),  # population std (ddof=0) over the folds
        "best_epoch_mean": float(bests.mean()),
        "best_epoch_std": float(bests.std()),
        "run_dir": str(cli.run_dir),
    }
    if cli.trainer.is_global_zero:
        write_json(Path(cli.run_dir) / "cv_summary.json", report)
        print(
            f"cv {base.name}: {report['monitor']} {report['mean']:.4f} +- {report['std']:.4f} over {len(results)} "
            f"folds (best epochs {report['best_epoch_mean']:.4f} +- {report['best_epoch_std']:.4f}); "
            f"{Path(cli.run_dir) / 'cv_summary.json'}",
            flush=True,
        )
    return report
