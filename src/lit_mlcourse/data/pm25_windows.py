"""From hourly readings to samples: continuous segments, the missing-reading policy, sliding windows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lit_mlcourse.data.pm25_files import Readings

MissingPolicy = Literal["interpolate", "drop"]


@dataclass
class Windows:
    """Samples in time order (segment, then hour): ``inputs[i]`` is ``(window, features)`` and
    ``targets[i]`` the target reading of the hour after it."""

    inputs: np.ndarray  # (n, window, features) float32
    targets: np.ndarray  # (n,) float32
    segment: np.ndarray  # (n,) index of the segment each window comes from
    candidates: int  # windows before dropping any
    dropped_target: int  # windows whose target reading is missing
    dropped_inputs: int  # windows left with a missing input after the policy


def segments(readings: Readings) -> list[np.ndarray]:
    """Runs of consecutive days within one month, each as ``(measurements, hours)``.

    The course's train.csv has the first 20 days of each month: a window never spans the gap from
    day 20 to the next month, nor any other hole in the calendar.
    """
    days = [dt.date.fromisoformat(key) for key in readings.keys]
    runs: list[list[int]] = []
    for index, day in enumerate(days):
        previous = days[index - 1] if index else None
        if previous and day - previous == dt.timedelta(days=1) and day.month == previous.month:
            runs[-1].append(index)
        else:
            runs.append([index])
    # (days, measurements, 24) -> (measurements, days * 24)
    return [np.concatenate(list(readings.values[run]), axis=1) for run in runs]


def interpolate_hours(values: np.ndarray) -> np.ndarray:
    """Fill NaN along the last axis (hours) linearly between the readings around them; the ends take
    the nearest reading. A series with no reading at all stays NaN."""
    flat = values.reshape(-1, values.shape[-1]).copy()
    missing = np.isnan(flat)
    gaps = missing.any(axis=1) & ~missing.all(axis=1)
    if gaps.any():
        import pandas as pd

        filled = pd.DataFrame(flat[gaps].T).interpolate(method="linear", limit_direction="both", axis=0)
        flat[gaps] = filled.to_numpy().T
    return flat.reshape(values.shape)


def _last_earlier_reading(sample: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """``sample`` (features, hours) where a feature with no reading at all holds the feature's last
    reading in ``earlier`` (the hours before the window), when there is one."""
    empty = np.isnan(sample).all(axis=1)
    if not empty.any():
        return sample
    sample = sample.copy()
    for feature in np.flatnonzero(empty):
        readings = earlier[feature][~np.isnan(earlier[feature])]
        if len(readings):
            sample[feature] = readings[-1]
    return sample


def make_windows(
    readings: Readings,
    feature_index: list[int],
    target_index: int,
    window: int,
    missing: MissingPolicy,
) -> Windows:
    """Every ``window``-hour input inside one segment with the next hour's target.

    The target is always the raw reading: windows whose target is missing are dropped under every
    policy (an interpolated target would score the model against a guess). ``interpolate`` fills a
    missing input from the other hours of its own window only, never from the hour to predict or
    later, just as test.csv's windows are filled; a measurement missing for a whole window takes its
    last reading before the window (the window is dropped when there is none). ``drop`` drops every
    window that touches a missing input.
    """
    inputs, targets, segment_of = [], [], []
    candidates = dropped_target = 0
    for segment_index, raw in enumerate(segments(readings)):
        for start in range(raw.shape[1] - window):
            candidates += 1
            target = raw[target_index, start + window]
            if np.isnan(target):
                dropped_target += 1
                continue
            sample = raw[feature_index, start : start + window]  # (features, window)
            if missing == "interpolate":
                sample = _last_earlier_reading(sample, raw[feature_index, :start])
            inputs.append(sample)
            targets.append(target)
            segment_of.append(segment_index)
    features = len(feature_index)
    samples = np.asarray(inputs, dtype=np.float64).reshape(-1, features, window)
    if missing == "interpolate":
        samples = interpolate_hours(samples)
    complete = ~np.isnan(samples).any(axis=(1, 2))
    return Windows(
        samples[complete].transpose(0, 2, 1).astype(np.float32),  # (n, window, features)
        np.asarray(targets, dtype=np.float32)[complete],
        np.asarray(segment_of, dtype=np.int64)[complete],
        candidates,
        dropped_target,
        int((~complete).sum()),
    )


def chronological_split(segment: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: within each segment, the windows in time order up to
    ``1 - val_fraction`` train and the rest validate, so every validation target comes after
    every training target of its segment."""
    train, val = [], []
    for value in np.unique(segment):
        members = np.flatnonzero(segment == value)
        cut = round(len(members) * (1.0 - val_fraction))
        train.append(members[:cut])
        val.append(members[cut:])
    return np.concatenate(train), np.concatenate(val)
