"""A checkpoint from elsewhere is data, never code: read as tensors and plain containers only, from a local file,
and refused when its hyperparameters name code outside the import policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError
from lit_mlcourse.import_policy import ALLOW_ENV, is_allowed

# Lightning's names for checkpoints it finds itself (`--ckpt_path last`), not files.
CHECKPOINT_KEYWORDS = ("last", "best", "hpc", "registry")
# The only instantiator Lightning's own checkpoints name (LightningCLI's, for models saved with a class path).
TRUSTED_INSTANTIATORS = ("lightning.pytorch.cli.instantiate_module", "pytorch_lightning.cli.instantiate_module")


def read_checkpoint(path: str | Path, option: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint in the local file ``path``, loaded with ``torch.load(weights_only=True)``; a URL, a missing
    file, a file holding pickled code or one whose hyperparameters name code to run is refused with a message naming
    ``option``, the file and the reason. Nothing in a refused file is run or imported."""
    checkpoint = read_checkpoint_data(path, option)
    check_named_code(path, checkpoint.get("hyper_parameters") or {}, option)
    return checkpoint


def read_checkpoint_data(path: str | Path, option: str) -> dict[str, Any]:
    """:func:`read_checkpoint` for a file whose tensors are read but whose hyperparameters never build anything (a
    fine-tune's backbone): everything but the check of the code they name."""
    import torch

    text = str(path)
    if "://" in text:
        raise ConfigValueError(
            f"{option}: {text} is a URL: lit loads checkpoints from local files only (Lightning would unpickle a "
            "downloaded one in full). Download it, check where it comes from, and give its path."
        )
    if not Path(path).is_file():
        raise DataFileNotFoundError(f"{option}: {path} does not exist.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError for code; zip and EOF errors for damaged files
        code = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(error))))
        if code:
            raise ConfigValueError(
                f"{option}: {path} holds pickled code ({', '.join(code)}), not only tensors and plain data: refused "
                "unread (nothing in it ran). lit loads checkpoints with torch.load(weights_only=True) only."
            ) from None
        raise ConfigValueError(
            f"{option}: {path} cannot be read as a checkpoint ({type(error).__name__}: {str(error)[:300]})."
        ) from None
    if not isinstance(checkpoint, dict):
        raise ConfigValueError(f"{option}: {path} is not a checkpoint (it holds a {type(checkpoint).__name__}).")
    return checkpoint


def check_named_code(path: str | Path, hparams: dict[str, Any], option: str = "ckpt_path") -> None:
    """Refuse hyperparameters that name code outside the import policy (``_instantiator``, ``_class_path``):
    loading them would import and run it."""
    instantiator = hparams.get("_instantiator")
    if instantiator is not None and instantiator not in TRUSTED_INSTANTIATORS:
        raise ConfigValueError(
            f"{option}: {path} names code to run in its hyper_parameters ('_instantiator': {instantiator!r}); "
            f"only Lightning's own ({TRUSTED_INSTANTIATORS[0]}) is accepted: refused before importing anything."
        )
    class_path = hparams.get("_class_path")
    if class_path is not None and (not isinstance(class_path, str) or not is_allowed(class_path)):
        raise ConfigValueError(
            f"{option}: {path} names the model class {class_path!r} in its hyper_parameters, outside what lit "
            f"imports (torch, torchvision, lightning, torchmetrics, lit_mlcourse): refused before importing it. If it "
            f"is your own code, allow its module with {ALLOW_ENV}=<module>."
        )
