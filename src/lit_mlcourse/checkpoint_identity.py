"""A checkpoint knows what it was trained on, and ``--ckpt_path`` refuses one from another model or other data.

Every checkpoint lit writes holds ``checkpoint["lit_mlcourse"]`` (callbacks.run_record.RunRecord): the model and
DataModule classes, the data's fingerprint (data.fingerprint) and how the run was made. Before a run loads a
checkpoint, once its model and data are built and before its trainer exists (so before Lightning restores anything
and before the run folder is written to), the CLI compares:

1. the model class, the DataModule class and the data fingerprint (``check_identity``). Lightning alone loads a
   model of the same keys and shapes trained on other data without a word; ``lit predict`` only warns about other
   data, since predicting inputs the model was not trained on is what it is for;
2. the weights' keys and shapes (``check_weights``), named key by key instead of Lightning's strict-loading error;
3. for ``fit``, the optimizer's parameter groups (``check_optimizer_groups``): their number and size.

A checkpoint written before the record existed still loads, with a warning that its data cannot be checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from lit_mlcourse.config_checks import import_class
from lit_mlcourse.data.fingerprint import data_fingerprint
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.import_policy import is_allowed

RECORD_KEY = "lit_mlcourse"


def class_path(obj: Any) -> str | None:
    """``module.Class`` of ``obj``'s class, where it is defined; ``None`` for ``None``."""
    return None if obj is None else f"{type(obj).__module__}.{type(obj).__qualname__}"


def identity(model: Any, datamodule: Any) -> dict[str, str | None]:
    """What a checkpoint of ``model`` trained on ``datamodule`` is: the part of the record that is compared."""
    fingerprint, covers = data_fingerprint(datamodule)
    return {
        "model_class": class_path(model),
        "datamodule_class": class_path(datamodule),
        "data_fingerprint": fingerprint,
        "data_fingerprint_of": covers,
    }


def stored_model_class(checkpoint: dict[str, Any]) -> str | None:
    """The model class a checkpoint was saved from: its record's, else the one LightningCLI put in its hyperparameters
    (checkpoints written before the record)."""
    record = checkpoint.get(RECORD_KEY)
    if isinstance(record, dict) and isinstance(record.get("model_class"), str):
        return record["model_class"]
    return _class_path_in(checkpoint.get("hyper_parameters"))


def _class_path_in(hparams: Any) -> str | None:
    stored = hparams.get("_class_path") if isinstance(hparams, dict) else None
    return stored if isinstance(stored, str) else None


def names_class(stored: Any, cls: type) -> bool:
    """Whether ``stored`` names ``cls``, by its full path or by another path it is exported under (imported only where
    the import policy allows it: a checkpoint's strings are not trusted)."""
    if stored is None or stored == f"{cls.__module__}.{cls.__qualname__}":
        return True
    if not isinstance(stored, str) or not is_allowed(stored):
        return False
    try:
        return import_class(stored) is cls
    except (ImportError, AttributeError, ValueError):
        return False


def check_identity(path: str | Path, checkpoint: dict[str, Any], model: Any, datamodule: Any, stage: str) -> None:
    """Refuse a checkpoint of another model class, DataModule class or data fingerprint, naming both sides and the
    weights' differences. Warn where a side is unknown (a checkpoint older than the record, a DataModule without a
    fingerprint) and, in ``predict``, about other data."""
    record = checkpoint.get(RECORD_KEY)
    if not isinstance(record, dict):
        rank_zero_warn(
            f"ckpt_path: {path} was written before lit recorded what a checkpoint was trained on: its classes and "
            "weights are checked, but not whether its data is this run's. Make sure data.* is what it was trained on."
        )
        record = {
            "model_class": stored_model_class(checkpoint),
            "datamodule_class": _class_path_in(checkpoint.get("datamodule_hyper_parameters")),
        }
    current = identity(model, datamodule)
    other_model = not names_class(record.get("model_class"), type(model))
    stored_data, current_data = record.get("datamodule_class"), current["datamodule_class"]
    stored_print, current_print = record.get("data_fingerprint"), current["data_fingerprint"]
    other_class = datamodule is not None and stored_data is not None and not names_class(stored_data, type(datamodule))
    other_print = None not in (stored_print, current_print) and stored_print != current_print
    other_data = other_class or other_print
    if not other_model and not other_data:
        return
    what = " and ".join(["another model"] * other_model + ["other data"] * other_data)
    lines = [
        f"  model in the checkpoint: {record.get('model_class')}",
        f"  model in this run:       {current['model_class']}",
        f"  data in the checkpoint:  {_data(stored_data, stored_print, record.get('data_fingerprint_of'))}",
        f"  data in this run:        {_data(current_data, current_print, current['data_fingerprint_of'])}",
        *[f"  weights: {difference}" for difference in weight_differences(checkpoint, model)],
    ]
    if stage == "predict" and not other_model:
        rank_zero_warn(
            f"ckpt_path: {path} was trained on {what}: its predictions are those of a model of that data.\n"
            + "\n".join(lines[2:])
        )
        return
    raise ConfigValueError(
        f"ckpt_path: {path} is a checkpoint of {what}: refused before anything was loaded.\n" + "\n".join(lines) + "\n"
        + _instead(stage)
    )  # fmt: skip


def _instead(stage: str) -> str:
    afresh = ", or leave out --ckpt_path to train afresh" if stage == "fit" else ""
    return f"Use the config and data it was trained with (config.yaml in its run folder){afresh}."


def _data(class_name: str | None, fingerprint: str | None, covers: str | None) -> str:
    if fingerprint is None:
        return f"{class_name or 'unknown'}, no fingerprint"
    return f"{class_name}, fingerprint {fingerprint}" + (f" ({covers})" if covers else "")


def weight_differences(checkpoint: dict[str, Any], model: torch.nn.Module) -> list[str]:
    """The keys of the checkpoint's ``state_dict`` that ``model`` lacks, those it has that the checkpoint lacks, and
    those of other shapes, as lines for a message (empty when the weights load)."""
    stored, expected = checkpoint.get("state_dict") or {}, model.state_dict()
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if getattr(model, "strict_loading", True) is False:  # the model loads what matches and leaves the rest
        missing, unexpected = [], []
    resized = [
        f"{key} {tuple(stored[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(set(stored) & set(expected))
        if isinstance(stored[key], torch.Tensor) and stored[key].shape != expected[key].shape
    ]
    return [
        *([f"{len(missing)} missing in the checkpoint: {_few(missing)}"] if missing else []),
        *([f"{len(unexpected)} not in this model: {_few(unexpected)}"] if unexpected else []),
        *([f"{len(resized)} of other shapes (checkpoint vs model): {_few(resized)}"] if resized else []),
    ]


def check_weights(path: str | Path, checkpoint: dict[str, Any], model: torch.nn.Module, stage: str) -> None:
    """Refuse weights that would not load into ``model``, naming the keys (Lightning's error comes after it has
    started the run)."""
    differences = weight_differences(checkpoint, model)
    if differences:
        raise ConfigValueError(
            f"ckpt_path: {path} holds other weights than {class_path(model)} builds from this config: refused before "
            "anything was loaded.\n" + "\n".join(f"  weights: {difference}" for difference in differences) + "\n"
            + _instead(stage)
        )  # fmt: skip


def check_optimizer_groups(path: str | Path, checkpoint: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """Refuse to resume an optimizer state of other parameter groups (their number or sizes) than ``optimizer``, the
    one the model builds from this config (``TaskModule.build_optimizer``: for a GAN, its first optimizer, the
    generator's, which its checkpoints also hold first)."""
    states = checkpoint.get("optimizer_states") or []
    if not states or not isinstance(states[0], dict):
        return  # a weights-only checkpoint: nothing of the optimizer to restore
    stored = [len(group.get("params", [])) for group in states[0].get("param_groups", [])]
    built = [len(group["params"]) for group in optimizer.param_groups]
    if stored != built:
        raise ConfigValueError(
            f"ckpt_path: {path} holds the state of an optimizer over {_groups(stored)}, but this config builds "
            f"{type(optimizer).__name__} over {_groups(built)}: refused before anything was loaded. The groups come "
            "from the model and its arguments (parameter_groups(): a fine-tune's mode, for one). " + _instead("fit")
        )


def _groups(sizes: list[int]) -> str:
    counts = " + ".join(str(size) for size in sizes)
    return f"{len(sizes)} parameter group{'s' if len(sizes) != 1 else ''} ({counts} tensors)"


def _few(items: list[str], shown: int = 5) -> str:
    more = f" ... and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
