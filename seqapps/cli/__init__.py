"""The command line (``python -m seqapps``): :mod:`.main` parses and dispatches, :mod:`.commands`
holds the subcommand plumbing that tasks and the server add to."""

from seqapps.cli.parser import main

__all__ = ["main"]
