"""Task name -> Task class.

Every module in the top-level ``tasks`` package registers its task with
:func:`register`; the module's file name is the task name, so ``get("pos")``
imports only ``tasks/pos.py``.
"""

from __future__ import annotations

import importlib
import pkgutil

from seqapps.errors import SeqappsError

_TASKS: dict[str, type] = {}


def register(cls):
    """Class decorator: make a Task subclass available by its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name`")
    _TASKS[cls.name] = cls
    return cls


def names() -> list[str]:
    import tasks

    found = {m.name for m in pkgutil.iter_modules(tasks.__path__) if not m.name.startswith("_")}
    return sorted(found | set(_TASKS))


def get(name: str):
    """Return an instance of the task called ``name``."""
    if name not in _TASKS:
        if name in names():
            importlib.import_module(f"tasks.{name}")
        if name not in _TASKS:
            raise SeqappsError(f"unknown task {name!r}; expected one of: {', '.join(names())}")
    return _TASKS[name]()


def all_tasks() -> list:
    return [get(n) for n in names()]
