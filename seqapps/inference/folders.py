"""Export folders written atomically: the checks before writing, the stale temporary folders of
killed exports, and the swap of a finished folder into place. Every export format uses these."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from seqapps.core.errors import ExportError


#: what a temporary name adds to the export's name (``.NAME.PID.RANDOM.tmp``)
TMP_NAME_EXTRA = 32


def check_target(out_dir: Path) -> None:
    """An export may replace an export or fill an empty folder; anything else is refused, as are a path
    under a file and a name longer than the filesystem allows (with room for the temporary name)."""
    if out_dir.is_file() or (out_dir.exists() and not out_dir.is_dir()):
        raise ExportError(f"{out_dir} is a file, not a folder; choose another path for the export")
    if out_dir.is_dir() and not is_export(out_dir) and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} exists and is not an export; choose another path")
    existing = next((p for p in Path(os.path.abspath(out_dir)).parents if os.path.lexists(p)), Path("/"))
    if not existing.is_dir():
        raise ExportError(f"{existing} is a file, so {out_dir} cannot be made; choose another path for the export")
    try:
        longest = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    if len(os.fsencode(out_dir.name)) + TMP_NAME_EXTRA > longest:
        raise ExportError(f"the export's name is {len(os.fsencode(out_dir.name))} bytes long; this filesystem allows "
                          f"{longest} a name and an export needs {TMP_NAME_EXTRA} more for its temporary name: choose "
                          "a shorter one")


def is_export(folder: Path) -> bool:
    """A SavedModel export, or an ONNX one (:mod:`seqapps.inference.formats`)."""
    return (folder / "saved_model.pb").exists() or ((folder / "model.onnx").exists()
                                                    and (folder / "metadata.json").exists())


def remove_stale(out_dir: Path) -> list[Path]:
    """Remove the temporary folders that exports to ``out_dir`` killed mid-way left beside it
    (``.NAME.PID.*.tmp`` and ``.NAME.old-PID`` whose process is gone); returns them."""
    removed = []
    for path in out_dir.parent.glob(f".{out_dir.name}.*"):
        match = re.fullmatch(rf"\.{re.escape(out_dir.name)}\.(?:(\d+)\..*\.tmp|old-(\d+))", path.name)
        if match and path.is_dir() and not _alive(int(match.group(1) or match.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing export is replaced only after the new one is whole."""
    check_target(out_dir)
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        if old is not None:
            old.rename(out_dir)
        raise
    if old is not None and old.is_symlink():  # a link to an export: the link is replaced, its target kept
        old.unlink()
    elif old is not None:
        shutil.rmtree(old, ignore_errors=True)
