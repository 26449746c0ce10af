"""PM2.5 of the next hour from the previous hours' air-quality readings (the course's homework)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveInt
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, TensorDataset

from lit_mlcourse.data.fingerprint import digest_file
from lit_mlcourse.data.folds import check_fold, kfold_split
from lit_mlcourse.data.in_memory import InMemoryDataModule
from lit_mlcourse.data.pm25_files import Readings, read_test, read_train
from lit_mlcourse.data.pm25_windows import MissingPolicy, Windows, chronological_split, interpolate_hours, make_windows
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError, DataFormatError


class PM25DataModule(InMemoryDataModule):
    """Windows of ``window`` consecutive hours of the selected measurements, inside one month,
    predicting the ``target`` reading of the next hour.

    Validation is a chronological hold-out (the last ``val_fraction`` of each month's windows) or, with
    ``num_folds``, fold ``fold`` of ``KFold(num_folds, shuffle=True, random_state=fold_seed)`` over the
    windows in time order (``lit cv`` sets these). The model is given the standardization statistics of
    the training part only. ``test.csv`` is the predict set; ``predict_ids`` holds its ids.

    Args:
        data_dir: folder holding the course files.
        train_file: training readings, relative to ``data_dir``.
        test_file: readings to predict, relative to ``data_dir``.
        encoding: ``auto`` (UTF-8, else Big5) or the files' encoding.
        features: measurements used as inputs, by name (``None``: all of them).
        target: the measurement to predict.
        window: hours of input per sample.
        hours: how many of the latest ``window`` hours of each measurement are inputs, by name; the key
            ``"*"`` sets it for the measurements not named (default: all ``window`` hours). For
            example ``{"*": 3, "PM2.5": 9}``: nine hours of PM2.5, the last three of the others.
        missing: ``interpolate`` a missing input linearly from the other hours of its window (never
            from the hour predicted), or ``drop`` the windows that touch one. Windows whose target is
            missing are dropped either way.
        val_fraction: share of each month's windows (the latest) held out for validation.
        num_folds: cross-validation folds (``None``: the chronological hold-out).
        fold: which fold validates.
        fold_seed: ``random_state`` of the folds.
        batch_size: samples per batch.
        num_workers: DataLoader workers (the data is in memory: 0 is fastest).
    """

    def __init__(
        self,
        data_dir: str = "data/pm25",
        train_file: str = "train.csv",
        test_file: str = "test.csv",
        encoding: Literal["auto", "utf-8", "big5"] = "auto",
        features: list[str] | None = None,
        target: str = "PM2.5",
        window: PositiveInt = 9,
        hours: dict[str, int] | None = None,
        missing: MissingPolicy = "interpolate",
        val_fraction: OpenUnitInterval = 0.2,
        num_folds: int | None = None,
        fold: NonNegativeInt = 0,
        fold_seed: int = 0,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        check_fold(num_folds, fold)
        self.save_hyperparameters()
        self.predict_ids: list[str] = []

    def _path(self, name: str) -> Path:
        path = Path(self.hparams.data_dir) / name
        if not path.is_file():
            raise DataFileNotFoundError(
                f"PM2.5 data: {path} does not exist (looked in data_dir={self.hparams.data_dir!r}). Put the "
                f"course's train.csv and test.csv there, or pass --data.data_dir <folder holding them>."
            )
        return path

    @cached_property
    def readings(self) -> Readings:
        readings = read_train(self._path(self.hparams.train_file), self.hparams.encoding)
        unknown = [name for name in [*(self.hparams.features or []), self.hparams.target] if name not in readings.names]
        if unknown:
            raise DataFormatError(
                f"unknown measurement(s) {', '.join(map(repr, unknown))} in data.features / data.target; "
                f"{self.hparams.train_file} has: {', '.join(readings.names)}."
            )
        return readings

    @cached_property
    def data_fingerprint(self) -> str:
        """What the model trains on, for checkpoints (see data.fingerprint): a digest of the training CSV's bytes."""
        return digest_file(self._path(self.hparams.train_file))

    @property
    def data_fingerprint_of(self) -> str:
        return f"sha256 of {self.hparams.train_file}'s bytes"

    @property
    def feature_names(self) -> list[str]:
        """The input measurements, checked against the file."""
        names = self.readings.names  # reading the file validates the selected names
        return list(self.hparams.features or names)

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(window, features)`` of one sample, for the model."""
        return (self.hparams.window, len(self.feature_names))

    @property
    def input_hours(self) -> list[int]:
        """How many of the latest hours of each input feature the model uses (see ``hours``)."""
        hours = dict(self.hparams.hours or {})
        window = self.hparams.window
        default = hours.pop("*", window)
        unknown = sorted(set(hours) - set(self.feature_names))
        if unknown:
            raise ConfigValueError(
                f"data.hours names {', '.join(map(repr, unknown))}, which are not inputs; the inputs are: "
                f"{', '.join(self.feature_names)} (use '*' for all the others)."
            )
        chosen = [hours.get(name, default) for name in self.feature_names]
        bad = [value for value in [default, *hours.values()] if not 1 <= value <= window]
        if bad:
            raise ConfigValueError(f"data.hours: {bad[0]} is outside 1..window={window}.")
        return chosen

    @cached_property
    def windows(self) -> Windows:
        readings = self.readings
        windows = make_windows(
            readings,
            [readings.names.index(name) for name in self.feature_names],
            readings.names.index(self.hparams.target),
            self.hparams.window,
            self.hparams.missing,
        )
        rank_zero_info(
            f"PM2.5 data: {self.hparams.train_file} read as {readings.encoding} (data.encoding: "
            f"{self.hparams.encoding}); {readings.missing} missing readings (policy: {self.hparams.missing}); "
            f"{len(windows.targets)} of {windows.candidates} windows kept "
            f"({windows.dropped_target} with a missing target, {windows.dropped_inputs} with a missing input)."
        )
        if len(windows.targets) == 0:
            raise DataFormatError(f"{self.hparams.train_file}: no complete window of {self.hparams.window} hours.")
        return windows

    @cached_property
    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and validation windows."""
        hp = self.hparams
        if hp.num_folds is None:
            return chronological_split(self.windows.segment, hp.val_fraction)
        return kfold_split(len(self.windows.targets), hp.num_folds, hp.fold, hp.fold_seed)

    @cached_property
    def standardization(self) -> dict[str, Any]:
        """Per-feature mean and std of the training inputs, and those of the training targets."""
        train = self.split[0]
        inputs = self.windows.inputs[train].reshape(-1, len(self.feature_names)).astype(np.float64)
        targets = self.windows.targets[train].astype(np.float64)
        std = inputs.std(axis=0)
        return {
            "mean": inputs.mean(axis=0).tolist(),
            "std": np.where(std > 0, std, 1.0).tolist(),  # a constant input stays as it is
            "target_mean": float(targets.mean()),
            "target_std": float(targets.std()) or 1.0,
        }

    def setup(self, stage: str) -> None:
        if stage == "predict":
            self._setup_predict()
            return
        inputs, targets = torch.from_numpy(self.windows.inputs), torch.from_numpy(self.windows.targets)
        for split, index in zip(("train", "val"), self.split, strict=True):
            index = torch.from_numpy(index)
            self.datasets[split] = TensorDataset(*self._finite(split, inputs[index], targets[index]))

    def _setup_predict(self) -> None:
        test = read_test(self._path(self.hparams.test_file), self.hparams.encoding)
        lacking = [name for name in self.feature_names if name not in test.names]
        if lacking:
            raise DataFormatError(f"{self.hparams.test_file} lacks the input measurement(s) {', '.join(lacking)}.")
        hours = test.values.shape[2]
        if hours < self.hparams.window:
            raise DataFormatError(
                f"{self.hparams.test_file} has {hours} hours per id, fewer than data.window={self.hparams.window}."
            )
        values = test.values[:, [test.names.index(name) for name in self.feature_names], -self.hparams.window :]
        filled = interpolate_hours(values)
        # A measurement missing for all hours of an id takes its training mean (a neutral input).
        means = np.asarray(self.standardization["mean"])
        empty = np.isnan(filled)
        filled = np.where(empty, means[None, :, None], filled)
        rank_zero_info(
            f"PM2.5 predict: {test.missing} missing readings in {self.hparams.test_file} interpolated; "
            f"{int(empty.any(axis=2).sum())} id/measurement rows had none and took the training mean."
        )
        self.predict_ids = test.keys
        inputs = torch.from_numpy(filled.transpose(0, 2, 1).astype(np.float32))  # (ids, window, features)
        self.datasets["predict"] = TensorDataset(*self._finite("predict", inputs))

    def _finite(self, split: str, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``tensors`` (inputs, then targets: one row per sample), refused if any holds NaN or Inf. The readers and
        the missing-reading policy leave none; one that got through would make every loss it touches NaN."""
        bad = torch.zeros(len(tensors[0]), dtype=torch.bool)
        for tensor in tensors:
            bad |= ~torch.isfinite(tensor.reshape(len(tensor), -1)).all(dim=1)
        if bad.any():
            file = self.hparams.test_file if split == "predict" else self.hparams.train_file
            raise DataFormatError(
                f"PM2.5 data: {int(bad.sum())} of {len(bad)} {split} samples from {file} hold NaN or Inf after the "
                f"missing-reading policy (missing: {self.hparams.missing}; first: sample {int(bad.nonzero()[0])}). "
                "None should get this far: please report it with the file; `data.missing: drop` may avoid it."
            )
        return tensors

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
