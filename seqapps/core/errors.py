"""Error types a person can act on.

Every error that reaches the command line as a one-line message derives from
:class:`SeqappsError`; the CLI prints ``error: <message>`` and exits with code 2.
Anything else is a bug and keeps its traceback.
"""


class SeqappsError(Exception):
    """A problem with the user's input, named with what was expected."""


class ConfigError(SeqappsError):
    """An unknown or malformed configuration key or value."""


class DataError(SeqappsError):
    """A dataset that cannot be found, read or parsed."""


class ExportError(SeqappsError):
    """A run or export directory that cannot be used."""
