"""Task name -> Task class.

Tasks are found two ways, neither depending on the current directory:

* every folder of the ``tasks`` package installed beside seqapps (``pip install .``
  installs both; from a checkout, ``python -m seqapps`` imports the checkout's);
  the folder's name is the task name and its ``task.py`` registers it, so ``get("pos")``
  imports only ``tasks/pos/task.py`` and what it imports;
* entry points in the group ``seqapps.tasks`` (name = task name, value = its module),
  for tasks that other installed distributions add.

A task module registers its Task subclass with :func:`register`.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata

from seqapps.core.errors import SeqappsError

ENTRY_POINT_GROUP = "seqapps.tasks"

_TASKS: dict[str, type] = {}


def register(cls):
    """Class decorator: make a Task subclass available by its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name`")
    _TASKS[cls.name] = cls
    return cls


def _modules() -> dict[str, str]:
    """Task name -> the module that defines it."""
    import tasks

    # a task is a folder (tasks/NAME/task.py registers it) or, for a small task, one file tasks/NAME.py
    found = {m.name: f"tasks.{m.name}.task" if m.ispkg else f"tasks.{m.name}"
             for m in pkgutil.iter_modules(tasks.__path__) if not m.name.startswith("_")}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value.split(":")[0])
    return found


def names() -> list[str]:
    return sorted(set(_modules()) | set(_TASKS))


def get(name: str):
    """Return an instance of the task called ``name``."""
    if name not in _TASKS:
        module = _modules().get(name)
        if module is not None:
            importlib.import_module(module)
        if name not in _TASKS:
            raise SeqappsError(f"unknown task {name!r}; expected one of: {', '.join(names())}")
    return _TASKS[name]()


def all_tasks() -> list:
    return [get(n) for n in names()]
