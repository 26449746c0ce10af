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


def labelled_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of a stratified ``fraction`` of ``labels`` (each class keeps its share, the total is
    ``round(fraction * len(labels))``), drawn by ``seed``: the labelled part of a semi-supervised training set."""
    from sklearn.model_selection import train_test_split

    check_label_fraction(fraction)
    count = max(len(np.unique(labels)), round(fraction * len(labels)))  # at least one image per class
    if count >= len(labels):
        return np.arange(len(labels))
    try:
        kept, _ = train_test_split(np.arange(len(labels)), train_size=count, stratify=labels, random_state=seed)
    except ValueError as error:  # a class with one image, or too few left out to hold every class
        raise ConfigValueError(
            f"data.label_fraction={fraction} cannot draw a stratified subset of the {len(labels)} training labels "
            f"({error}). Use a smaller label_fraction, or 1 to keep every label."
        ) from None
    return np.sort(kept)


def check_label_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ConfigValueError(f"data.label_fraction={fraction} must be in (0, 1]: the share of training labels kept.")
