"""Errors caused by the user's input. ``lit`` prints their message alone (no traceback): the message
names the file, line, key or value and says what to do instead."""

import re

# torch's DataLoader re-raises an error of a worker process as ``type(error)(text)``, where the text is the worker's
# whole traceback (torch._utils.ExceptionWrapper.reraise), which lit would print as the message.
_WORKER_TRACEBACK = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback \(most recent")


class UserInputError(Exception):
    """Bad input: a data file, a folder, a config value."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str) and _WORKER_TRACEBACK.match(args[0]):
            # The traceback ends with the original error, "<module>.<class>: <message>": keep only the message.
            args = (args[0].rpartition(f"{type(self).__module__}.{type(self).__qualname__}: ")[2].rstrip("\n"),)
        super().__init__(*args)


class DataFormatError(UserInputError, ValueError):
    """A data file that does not have the expected format."""


class DataFileNotFoundError(UserInputError, FileNotFoundError):
    """A data file or folder that is not where the config says."""


class ConfigValueError(UserInputError, ValueError):
    """A config value outside its valid range."""
