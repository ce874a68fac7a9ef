"""Named recipes: a task's best known settings for a dataset, kept as data.

A :class:`Preset` is a list of ``KEY=VALUE`` overrides over the task's defaults, the way
``--set`` writes them. A preset that names a ``data`` set is that dataset's recipe:
``train TASK --data NAME`` uses it unless ``--preset`` says otherwise (``--preset none``
keeps the bare defaults). The benchmarks train through presets only, so every figure in
``benchmarks/RESULTS.md`` is what ``python -m seqapps train TASK --data NAME`` gives.
"""

from __future__ import annotations

import dataclasses

from seqapps.core.errors import ConfigError

NONE = "none"


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    description: str
    overrides: tuple[str, ...] = ()
    data: str | None = None   # the named dataset this is the recipe for (chosen by default when training it)


def choose(task, data: str | None, name: str | None) -> Preset | None:
    """The preset ``name`` of ``task``; with no name, the recipe of the dataset ``data`` (or None)."""
    presets = {p.name: p for p in task.presets}
    if name == NONE:
        return None
    if name is not None:
        if name not in presets:
            known = ", ".join([*presets, NONE]) if presets else NONE
            raise ConfigError(f"{task.name} has no preset {name!r}; expected one of: {known}")
        return presets[name]
    return next((p for p in task.presets if data is not None and p.data == data), None)


def rows(tasks) -> list[tuple[str, str, str, str]]:
    """``(task, preset, dataset, description + overrides)`` for ``python -m seqapps presets``."""
    return [(t.name, p.name, p.data or "-", f"{p.description} [{' '.join(p.overrides) or 'task defaults'}]")
            for t in tasks for p in t.presets]
