"""Damaged files in a study's cells: found, named with the cell that made them and the fix, rebuilt.

Before each run (and in ``skingen status``/``--check``) every done cell's files are checked cheaply:
an HDF5 file opens and yields its datasets' ends, a safetensors header matches the file's size, a torch
zip archive's directory is whole, JSON parses, a CSV ends with a whole row. When a cell fails on a file error, the folders it read
and its own are checked deeply (every HDF5 dataset read, every zip member's CRC). A damaged file's cell
gets a ``DAMAGED`` marker and loses ``DONE``: ``skingen status`` shows it stale and the next
``skingen run`` deletes its folder and rebuilds it, then runs the cells waiting on it (cells already
done from the file while it was whole stay done: the rebuilt cell has the same key and inputs).
"""
from __future__ import annotations

import json
import logging
import pickle
import shutil
import struct
import time
import zipfile
from pathlib import Path

from ..atomic import write_json
from ..errors import DamagedFile
from .plan import Cell

log = logging.getLogger(__name__)
CHECKED = (".h5", ".safetensors", ".pt", ".pth", ".bin", ".json", ".csv")
MARKERS = {"DONE", "RUNNING", "FAILED", "DAMAGED"}
FILE_ERRORS = (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile)


def _h5(path: Path, deep: bool) -> None:
    import h5py

    with h5py.File(path, "r") as h5:
        datasets: list = []
        h5.visititems(lambda _, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for ds in datasets:
            if not ds.shape or not ds.size:
                ds[()]
            elif deep:
                step = max(1, (64 << 20) // max(1, ds.dtype.itemsize * (ds.size // ds.shape[0])))
                for i in range(0, ds.shape[0], step):
                    ds[i:i + step]
            else:
                ds[0], ds[-1]


def _safetensors(path: Path, deep: bool) -> None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("no safetensors header")
        n = struct.unpack("<Q", head)[0]
        if n > size - 8:
            raise ValueError(f"header of {n} bytes in a file of {size}")
        header = json.loads(fh.read(n))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise ValueError(f"{size} bytes, the header describes {8 + n + end}")


def _torch_zip(path: Path, deep: bool) -> None:
    with open(path, "rb") as fh:
        if fh.read(2) != b"PK":
            return  # not a zip archive (legacy torch format): nothing cheap to check
    size = path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if any(i.header_offset + i.compress_size > size for i in infos):
            raise ValueError("a member runs past the end of the file")
        if deep and (bad := zf.testzip()) is not None:
            raise ValueError(f"member {bad} fails its CRC check")


def _json(path: Path, deep: bool) -> None:
    json.loads(path.read_text())


def _csv(path: Path, deep: bool) -> None:
    """Our CSVs are written whole (atomically) with a newline after every row, each with the header's fields: a
    file cut short ends without one or with a short row (deep: every row is checked)."""
    import csv

    text = path.read_text()
    if not text.endswith("\n"):
        raise ValueError("the last row is cut short (no newline at the end)")
    rows = list(csv.reader(text.splitlines() if deep else [text.split("\n", 1)[0], text.rstrip("\n").rsplit("\n", 1)[-1]]))
    if bad := next((i for i, row in enumerate(rows) if len(row) != len(rows[0])), None):
        raise ValueError(f"row {bad if deep else 'last'} has {len(rows[bad])} fields, the header {len(rows[0])}")


CHECKS = {".h5": _h5, ".safetensors": _safetensors, ".pt": _torch_zip, ".pth": _torch_zip, ".bin": _torch_zip,
          ".json": _json, ".csv": _csv}


def file_problem(path: Path, deep: bool = False) -> str | None:
    """Why ``path`` cannot be read whole, or None."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        CHECKS[path.suffix](path, deep)
    except Exception as exc:  # noqa: BLE001 - any failure to read it is the finding
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return None


def folder_problem(folder: Path, deep: bool = False) -> tuple[Path, str] | None:
    """The first damaged file of a cell folder (temp files and markers aside)."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.rglob("*")):
        if (path.suffix in CHECKED and path.is_file() and path.name not in MARKERS
                and not path.name.startswith(".")):
            if (why := file_problem(path, deep)) is not None:
                return path, why
    return None


def line(folder: Path, path: Path, reason: str) -> str:
    """The one-line message: the file, the cell that made it and the fix."""
    return (f"{path}: truncated or corrupt ({reason}); made by cell {folder.parent.name}/{folder.name}; it is marked "
            f"stale: the next 'skingen run' rebuilds it and the cells waiting on it (or delete {folder})")


def mark(folder: Path, path: Path, reason: str, found_by: str) -> str:
    """Mark the cell of ``folder`` damaged (``DAMAGED``, no ``DONE``); return the message."""
    write_json(folder / "DAMAGED", {"file": str(path), "reason": reason, "found_by": found_by, "time": time.time()})
    (folder / "DONE").unlink(missing_ok=True)
    return line(folder, path, reason)


def damaged(cell: Cell, root: Path) -> dict | None:
    """The cell's ``DAMAGED`` marker, or None."""
    path = cell.folder(root) / "DAMAGED"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"file": str(path.parent), "reason": "unreadable DAMAGED marker"}


def _done(cell: Cell, root: Path) -> bool:
    done = cell.folder(root) / "DONE"
    return done.is_file() and done.read_text().strip() == cell.key


def scan(cells: list[Cell], root: Path, marking: bool = True) -> list[str]:
    """Check every done cell's files cheaply; one line per newly found file. ``marking``: mark the damaged
    cells (what ``run`` does); off, nothing is written (``status``, ``--check``, ``--dry-run``)."""
    lines = []
    for cell in cells:
        if _done(cell, root) and (found := folder_problem(cell.folder(root))):
            lines.append(mark(cell.folder(root), *found, found_by="scan") if marking
                         else line(cell.folder(root), *found))
    return lines


def marked_lines(cells: list[Cell], root: Path) -> list[str]:
    """One line per cell marked damaged."""
    return [line(c.folder(root), Path(m["file"]), m["reason"]) for c in cells if (m := damaged(c, root))]


def reset(cells: list[Cell], root: Path) -> list[Cell]:
    """Delete the folders of cells marked damaged, so that they are rebuilt from nothing."""
    out = []
    for cell in cells:
        if damaged(cell, root) is not None and not (cell.folder(root) / "RUNNING").is_file():
            shutil.rmtree(cell.folder(root))
            log.info("rebuilding %s/%s: it held a damaged file", cell.stage, cell.folder(root).name)
            out.append(cell)
    return out


def _file_error(exc: BaseException) -> bool:
    """An exception a damaged file may cause (out of memory aside)."""
    return ((isinstance(exc, FILE_ERRORS) or type(exc).__name__ == "SafetensorError")
            and "out of memory" not in str(exc))


def _owner(path: Path, folders: list[Path]) -> Path | None:
    path = Path(path).resolve()
    return next((f for f in folders if path.is_relative_to(f.resolve())), None)


def explain(cell: Cell, root: Path, inputs: dict[str, Path], exc: BaseException) -> DamagedFile | None:
    """After ``cell`` failed with ``exc``: the damaged file behind it (its maker marked), or None."""
    folders = [Path(f) for f in inputs.values()] + [cell.folder(root)]
    if isinstance(exc, DamagedFile):
        found = (Path(exc.path), exc.reason)
    elif _file_error(exc):
        found = next((f for folder in folders if (f := folder_problem(folder, deep=True))), None)
    else:
        return None
    owner = _owner(found[0], folders) if found else None
    if owner is None:
        return None
    message = mark(owner, found[0], found[1], found_by=f"{cell.stage}/{cell.folder(root).name}")
    err = DamagedFile(found[0], found[1])
    err.args = (message,)
    return err
