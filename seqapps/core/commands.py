"""Subcommands a task can add to the command line, and the helpers commands share.

A task lists its own subcommands in ``Task.cli_commands()`` (char_lm: ``generate`` and
``inspect``); ``seqapps.cli.parser`` collects them from the registry. Each is a :class:`Command`:
a name, a help line, ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable  # (argparse.ArgumentParser) -> None
    run: Callable            # (argparse.Namespace) -> int | None


def at_least_one(text):
    """A whole number >= 1 (sizes, steps, epochs)."""
    value = positive_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def positive_int(text):
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def port(text):
    """A TCP port, 1-65535."""
    value = positive_int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return value


def number(low: float = 0.0, above: bool = False):
    """An argparse type: a finite number >= ``low`` (> ``low`` with ``above``)."""
    import math

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"expected a finite number {'>' if above else '>='} {low:g}, got {text!r}")
        return value

    return parse


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
