"""Which code a config may name. A ``class_path`` or a callable in a YAML file (or on the command line) is imported
and run by jsonargparse: ``class_path: os.system`` would run a shell command. ``lit`` lets values name only what
lives in the packages a training run needs, and refuses anything else before importing it.

Allowed: torch, torchvision, lightning, torchmetrics and lit_mlcourse, less the entry points inside them that load or
run code from elsewhere. A user adds their own modules by name with ``LIT_MLCOURSE_ALLOW_IMPORTS=mypackage,other.mod``
(an environment variable, so that a config cannot allow itself).
"""

from __future__ import annotations

import os
import re

from jsonargparse import set_parsing_settings

from lit_mlcourse.config_checks import locate_value

ALLOW_ENV = "LIT_MLCOURSE_ALLOW_IMPORTS"
ALLOWED_PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "lit_mlcourse")
# Inside the allowed packages: what loads pickles, fetches or builds code, or starts processes.
DENIED_INSIDE = (
    "torch.hub",
    "torch.load",
    "torch.package",
    "torch.jit.load",
    "torch.utils.cpp_extension",
    "torch.multiprocessing",
    "torch.distributed.run",
    "torch.distributed.launch",
    "torch.distributed.elastic",
    "torch.serialization",
    "lightning.fabric.utilities.cloud_io",
    "lightning.pytorch.core.saving",
)


def user_allowed() -> list[str]:
    """The import paths the user allowed in ``LIT_MLCOURSE_ALLOW_IMPORTS`` (comma-separated)."""
    return [name.strip() for name in os.environ.get(ALLOW_ENV, "").split(",") if name.strip()]


def enforce_import_policy() -> None:
    """Deny every import path a parsed value names, except the allowed ones (jsonargparse checks a path before
    importing it, and again where the imported object is defined)."""
    set_parsing_settings(
        import_path_denylist=["*", *DENIED_INSIDE], import_path_allowlist=[*ALLOWED_PACKAGES, *user_allowed()]
    )


def is_allowed(path: str) -> bool:
    """Whether the policy lets a value name ``path``: the most specific entry that covers it decides."""
    allowed = {entry: True for entry in (*ALLOWED_PACKAGES, *user_allowed())}
    verdicts = {**{entry: False for entry in DENIED_INSIDE}, **allowed}
    parts = path.split(".")
    for length in range(len(parts), 0, -1):
        verdict = verdicts.get(".".join(parts[:length]))
        if verdict is not None:
            return verdict
    return False


def explain_denied_import(message: str, argv: list[str]) -> str | None:
    """A jsonargparse refusal (``Importing 'x' is not allowed ...``) in ``lit``'s terms, with where the path was
    given (``argv``: the parsed arguments); ``None`` for other messages."""
    match = re.search(r"Importing '([\w.]+)' is not allowed", message)
    if match is None:
        return None
    place = locate_value(match.group(1), argv)
    return (
        f"'{match.group(1)}'{f' ({place})' if place else ''} is not importable from a config: lit imports only "
        "names under "
        f"{', '.join(ALLOWED_PACKAGES)} (less {', '.join(DENIED_INSIDE[:3])}, ...: they load or run code from "
        f"elsewhere). If it is your own code, allow its module with {ALLOW_ENV}=<module>[,<module>...]."
    )
