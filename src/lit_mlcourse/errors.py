"""Errors caused by the user's input. ``lit`` prints their message alone (no traceback): the message
names the file, line, key or value and says what to do instead."""


class UserInputError(Exception):
    """Bad input: a data file, a folder, a config value."""


class DataFormatError(UserInputError, ValueError):
    """A data file that does not have the expected format."""


class DataFileNotFoundError(UserInputError, FileNotFoundError):
    """A data file or folder that is not where the config says."""


class ConfigValueError(UserInputError, ValueError):
    """A config value outside its valid range."""
