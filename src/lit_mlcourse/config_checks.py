"""Config mistakes explained: where a bad key or value was set, the closest valid key, the valid range."""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace

from lit_mlcourse.errors import ConfigValueError

# Segments that YAML files may spell out or leave implicit (`model.optimizer.lr` is
# `model.init_args.optimizer.init_args.lr` once parsed).
_IMPLICIT = {"init_args", "dict_kwargs"}


def import_class(class_path: str) -> type:
    """The class a ``class_path`` names (already validated by the parser)."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def config_files(argv: list[str]) -> list[Path]:
    """The ``--config`` / ``-c`` files named on a command line, in order."""
    files = []
    for index, arg in enumerate(argv):
        if arg in ("--config", "-c") and index + 1 < len(argv):
            files.append(Path(argv[index + 1]))
        elif arg.startswith("--config="):
            files.append(Path(arg.split("=", 1)[1]))
    return files


def _normal(key: str) -> tuple[str, ...]:
    return tuple(part for part in key.split(".") if part and part not in _IMPLICIT)


def _walk_yaml(node: yaml.Node, prefix: tuple[str, ...]):
    """(dotted key, line) of every mapping key in a composed YAML document."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, *_normal(str(key_node.value)))
            yield key, key_node.start_mark.line + 1
            yield from _walk_yaml(value_node, key)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk_yaml(item, prefix)


def locate_key(key: str, argv: list[str]) -> str | None:
    """Where ``key`` (dotted, e.g. ``trainer.max_epoch``) was set: ``file:line`` of the last config file
    that has it, or ``the command line``. ``None`` when it cannot be found."""
    wanted = _normal(key.lstrip("-"))
    for arg in argv:
        if arg.startswith("--") and _normal(arg[2:].split("=", 1)[0]) == wanted:
            return "the command line"
    found = None
    for path in config_files(argv):
        try:
            document = yaml.compose(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        for dotted, line in _walk_yaml(document, ()):
            if dotted == wanted or (len(wanted) == 1 and dotted[-1:] == wanted):
                found = f"{path}:{line}"
    return found


def locate_value(value: str, argv: list[str]) -> str | None:
    """Where the scalar ``value`` (a class path, say) was given: ``file:line`` of the first config file that has
    it, or ``the command line``. ``None`` when it cannot be found."""
    if any(arg == value or arg.endswith(f"={value}") for arg in argv):
        return "the command line"
    for path in config_files(argv):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, start=1):
            if re.search(rf"(^|[\s:'\"\[,]){re.escape(value)}($|[\s'\",\]])", line.split("#", 1)[0]):
                return f"{path}:{number}"
    return None


def _init_parameters(class_path: str) -> list[str]:
    try:
        parameters = inspect.signature(import_class(class_path).__init__).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return []
    return [name for name in parameters if name not in ("self", "args", "kwargs")]


def _unknown_key(message: str, valid_keys: list[str]) -> tuple[str, str, list[str]] | None:
    """(key, reason, candidate keys) when the message is about a key the parser does not know."""
    match = re.search(r"unrecognized arguments: --([\w.]+)", message)
    if match:
        return match.group(1), "unknown option", valid_keys
    match = re.search(r"does not accept option '([\w.]+)'", message)
    if match:
        group = re.search(r"Group '([\w.]+)'", message)
        key = f"{group.group(1)}.{match.group(1)}" if group else match.group(1)
        return key, "unknown key", valid_keys
    match = re.search(r"Option '([\w.]+)' is not accepted", message)
    if match:
        chain = re.findall(r'Parser key "([\w.]+)"', message[: match.start()])
        class_paths = re.findall(r"class_path '([\w.]+)'", message[: match.start()])
        key = ".".join([*chain, match.group(1)])
        owner = class_paths[-1] if class_paths else ""
        parameters = _init_parameters(owner)
        prefix = ".".join(chain)
        reason = f"unknown key for {owner.rsplit('.', 1)[-1]}" + (
            f" (it takes: {', '.join(parameters)})" if parameters else ""
        )
        return key, reason, [f"{prefix}.{name}" if prefix else name for name in parameters]
    return None


_NOISE = (
    "Does not validate against",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Expected a <class 'NoneType'>",
    "Problem with given class_path",
    "Parser key",
)


def _bad_value(message: str) -> tuple[str, str, list[str]] | None:
    """(key, reason, candidate names) when the message is about a value of a known key."""
    chain = re.findall(r'Parser key "([\w.]+)"', message)
    if not chain:
        return None
    tail = message[message.rindex(f'Parser key "{chain[-1]}"') :].splitlines()[1:]
    details = [line.strip().lstrip("- ").strip() for line in tail]
    details = [line for line in details if line and not line.startswith(_NOISE)]
    expected = [m.group(1) for line in details if (m := re.match(r"Expected a <class '(\w+)'>", line))]
    given = next((line.split(":", 1)[1].strip() for line in details if line.startswith("Given value:")), None)
    missing = next(
        (m for line in details if (m := re.search(r"module '([\w.]+)' has no attribute '(\w+)'", line))), None
    )
    if missing:
        module, name = missing.groups()
        reason = f"{module}.{name} does not exist"
        try:
            candidates = [
                f"{module}.{attr}" for attr in dir(importlib.import_module(module)) if not attr.startswith("_")
            ]
        except ImportError:
            candidates = []
        return ".".join(chain), reason, [*candidates, f"__value__{module}.{name}"]
    pattern = r"Expected a path but (\S+) either not"
    unknown_class = next((m for line in details if (m := re.search(pattern, line))), None)
    if unknown_class:
        name = unknown_class.group(1)
        return ".".join(chain), f"{name} is not a known class", [*_known_classes(), f"__value__{name}"]
    if expected and given is not None:
        return ".".join(chain), f"expected {' or '.join(expected)}, got {given!r}", []
    reason = next((line for line in details if not line.startswith(("Given value", "Expected a <class"))), None)
    return (".".join(chain), reason, []) if reason else None


def _known_classes() -> list[str]:
    """Short and full names of the classes a config can name here: this package's and torch.optim's."""
    import torch

    names = []
    for module_name in ("data", "models", "nets", "callbacks"):
        module = importlib.import_module(f"lit_mlcourse.{module_name}")
        names += [*module.__all__, *(f"lit_mlcourse.{module_name}.{name}" for name in module.__all__)]
    names += [name for name in dir(torch.optim) if name[:1].isupper()]
    return names


def explain_parse_error(message: str, argv: list[str], valid_keys: list[str] | None = None) -> str:
    """A short rewrite of a jsonargparse error: the key, what is wrong with it, where it was set and the
    closest valid key or name. The original message when it is not about one key."""
    found = _unknown_key(message, valid_keys or []) or _bad_value(message)
    if found is None:
        return message
    key, reason, candidates = found
    lines = [f"{_display(key)}: {reason}"]
    place = locate_key(key, argv)
    if place:
        lines.append(f"  set {'on' if place == 'the command line' else 'in'} {place}")
    wrong = next((name[len("__value__") :] for name in candidates if name.startswith("__value__")), key)
    shown = [_display(name) for name in candidates if not name.startswith("__value__")]
    lowered = {name.lower(): name for name in shown}  # case slips (Adamw) count as the closest
    close = difflib.get_close_matches(_display(wrong).lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        lines.append(f"  did you mean '{lowered[close[0]]}'?")
    return "\n".join(lines)


def _display(key: str) -> str:
    return ".".join(_normal(key))


def optimizer_entries(node: Any, path: tuple[str, ...] = ()):
    """(dotted key, init_args) of every torch.optim class in a parsed config."""
    if isinstance(node, Namespace):
        class_path = node.get("class_path")
        if isinstance(class_path, str) and class_path.startswith("torch.optim.") and ".lr_scheduler." not in class_path:
            yield ".".join(path), node.get("init_args") or Namespace()
        for key, value in vars(node).items():
            yield from optimizer_entries(value, (*path, key))


def _where(key: str, argv: list[str]) -> str:
    place = locate_key(key, argv)
    return f" (set {'on' if place == 'the command line' else 'in'} {place})" if place else ""


def check_values(config: Namespace, argv: list[str]) -> None:
    """Semantic checks that types alone cannot express; raises :class:`ConfigValueError`."""
    for key, init_args in optimizer_entries(config):
        lr = init_args.get("lr")
        if isinstance(lr, (int, float)) and not (math.isfinite(lr) and lr > 0):
            shown = ".".join(_normal(key))
            raise ConfigValueError(
                f"{shown}.lr = {lr}{_where(f'{key}.lr', argv)}: the learning rate must be a finite number > 0 "
                "(typically 1e-4 to 1)."
            )
    trainer = config.get("trainer")
    if isinstance(trainer, Namespace) and _runs_on_cpu(trainer.get("accelerator", "auto")):
        _check_cpu_trainer(trainer, argv)


def _runs_on_cpu(accelerator: Any) -> bool:
    """Whether the run is on the CPU: ``cpu``, or ``auto`` on a machine without a CUDA or Apple GPU."""
    if accelerator == "auto":
        from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

        return not (CUDAAccelerator.is_available() or MPSAccelerator.is_available())
    return accelerator == "cpu"


def _check_cpu_trainer(trainer: Namespace, argv: list[str]) -> None:
    """GPU-only trainer options on the CPU, refused before anything runs."""
    if trainer.get("precision") in (16, "16", "16-mixed"):
        # Lightning would warn and train in bf16-mixed, while config.yaml and the checkpoints record 16-mixed.
        raise ConfigValueError(
            f"trainer.precision={trainer.precision}{_where('trainer.precision', argv)}: float16 mixed precision "
            "needs a GPU, and this run is on the CPU. On the CPU use bfloat16 (--config configs/trainer/bf16.yaml, "
            "or --trainer.precision bf16-mixed) or float32 (--trainer.precision 32-true)."
        )
    processes = _cpu_processes(trainer.get("devices", "auto")) * (trainer.get("num_nodes") or 1)
    if trainer.get("sync_batchnorm") and processes > 1:
        # Otherwise every process fails in DDP's setup: "SyncBatchNorm layers only work with GPU modules".
        raise ConfigValueError(
            f"trainer.sync_batchnorm=true{_where('trainer.sync_batchnorm', argv)}: torch's SyncBatchNorm runs on "
            f"GPUs only, and this run has {processes} processes on the CPU. For DDP on the CPU use "
            "--config configs/trainer/ddp_cpu.yaml, or add --trainer.sync_batchnorm false (each process then "
            "normalizes with the statistics of its own share of the batch)."
        )


def _cpu_processes(devices: Any) -> int:
    """Processes Lightning starts on the CPU for ``trainer.devices`` (``auto``: 1, ``-1``: one per core)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        devices = int(devices) if devices.lstrip("-").isdigit() else 1
    if devices == -1:
        return os.cpu_count() or 1
    return devices if isinstance(devices, int) and devices > 0 else 1


# Names of metrics that are better when higher / lower (the part after the stage prefix, `val/acc`).
_HIGHER_IS_BETTER = ("acc", "accuracy", "f1", "r2", "auroc", "auc", "precision", "recall", "iou", "map", "score")
_LOWER_IS_BETTER = ("loss", "rmse", "mse", "mae", "error", "nll", "fid", "perplexity")


def choose_checkpoint_monitor(checkpoint: Namespace, model_class: type) -> None:
    """Fill ``checkpoint.monitor`` and ``checkpoint.mode``: the task's own metric and direction when
    the user set neither; for a metric the user chose, the direction its name implies."""
    if checkpoint.monitor is None:
        checkpoint.monitor = getattr(model_class, "monitor", None)
        if checkpoint.mode is None:
            checkpoint.mode = getattr(model_class, "monitor_mode", "min")
        return
    if checkpoint.mode is not None:
        return
    if checkpoint.monitor == getattr(model_class, "monitor", None):
        checkpoint.mode = model_class.monitor_mode
        return
    name = checkpoint.monitor.rsplit("/", 1)[-1].lower()
    if name.startswith(_HIGHER_IS_BETTER) or name.endswith(_HIGHER_IS_BETTER):
        checkpoint.mode = "max"
    elif name.startswith(_LOWER_IS_BETTER) or name.endswith(_LOWER_IS_BETTER):
        checkpoint.mode = "min"
    else:
        raise ConfigValueError(
            f"checkpoint.monitor={checkpoint.monitor!r}: say whether higher or lower is better with "
            "--checkpoint.mode max or --checkpoint.mode min."
        )
