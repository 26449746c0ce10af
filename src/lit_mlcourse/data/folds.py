"""Validation splits shared by the DataModules: a fixed hold-out, or one fold of K."""

from __future__ import annotations

import numpy as np

from lit_mlcourse.errors import ConfigValueError


def check_fold(num_folds: int | None, fold: int) -> None:
    """Reject a fold index outside ``0 .. num_folds - 1`` with the values named."""
    if num_folds is None:
        return
    if num_folds < 2:
        raise ConfigValueError(f"num_folds={num_folds}: cross-validation needs at least 2 folds.")
    if not 0 <= fold < num_folds:
        raise ConfigValueError(f"fold={fold} is outside 0..{num_folds - 1} (num_folds={num_folds}).")


def kfold_split(
    n: int, num_folds: int, fold: int, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of fold ``fold``: ``KFold(num_folds, shuffle=True, random_state=seed)``
    over ``range(n)``, stratified by ``labels`` when given."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if labels is None:
        splits = KFold(num_folds, shuffle=True, random_state=seed).split(np.arange(n))
    else:
        splits = StratifiedKFold(num_folds, shuffle=True, random_state=seed).split(np.arange(n), labels)
    train, val = list(splits)[fold]
    return train, val
