"""Atomic writing of products: a temporary file in the same folder, then a rename.

A job killed while it writes (``kill -9``, a full disk, a power cut) must never leave a
half-written product that a rerun then trusts: every FITS file, table, figure and text the
workflow writes goes through `atomic_path`, so a reader sees either the old file, the complete
new one, or none. The temporary file lives next to the target (a rename is only atomic within
one file system) and keeps the target's suffix, so writers that choose the format by the file
name (astropy tables, matplotlib) still do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "PARTIAL_PREFIX",
    "atomic_path",
    "write_table",
    "write_hdul",
    "save_figure",
    "write_text",
    "write_json",
]

#: Name prefix of the temporary files (hidden; left behind only by a killed process).
PARTIAL_PREFIX = ".partial-"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; it replaces ``path`` when the block succeeds.

    The parent folder is created. If the block raises, the temporary file is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        The final file.

    Yields
    ------
    pathlib.Path
        A path in the same folder, with the same suffix, to write the content to.

    Examples
    --------
    >>> with atomic_path("out/table.ecsv") as tmp:  # doctest: +SKIP
    ...     table.write(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{path.name}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {path}")
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush a file to disk before it is renamed over the old one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_table(table: Any, path: str | Path, **kwargs: Any) -> None:
    """Write an astropy table atomically (format from the file name, e.g. ``.ecsv``)."""
    path = Path(path)
    kwargs.setdefault("format", _table_format(path))
    with atomic_path(path) as tmp:
        table.write(tmp, overwrite=True, **kwargs)


def _table_format(path: Path) -> str | None:
    formats = {".ecsv": "ascii.ecsv", ".fits": "fits", ".csv": "ascii.csv", ".html": "html"}
    return formats.get(path.suffix.lower())


def write_hdul(hdul: Any, path: str | Path, **kwargs: Any) -> None:
    """Write an `astropy.io.fits.HDUList` (or a single HDU) atomically."""
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, overwrite=True, **kwargs)


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> None:
    """Save a matplotlib figure atomically (format from the file name)."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any, **kwargs: Any) -> None:
    """Write JSON atomically (indented, NaN allowed as in Python's json)."""
    kwargs.setdefault("indent", 2)
    write_text(path, json.dumps(data, **kwargs) + "\n")
