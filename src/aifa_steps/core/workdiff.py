"""Differences between two work folders of the same night.

Two reductions of one night with the same configuration (on one core or two, locally or on a
cluster, before and after a refactoring) must give the same products. `compare_work_dirs`
reads both folders and lists what differs:

- a product in one folder and not in the other;
- ECSV tables: columns, rows and values (NaN equals NaN; text with the folder's own path in it
  compares as if both folders had the same name);
- FITS files: every data array and table, and the WCS cards of every header;
- JSON files, with the same path rule.

Logs, benchmarks and pictures (PNG, HTML: timestamps and rendering) are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SKIPPED_FOLDERS", "compare_work_dirs", "product_files"]

#: Folders of a work folder that hold no products: logs, timings, Snakemake's bookkeeping.
SKIPPED_FOLDERS = ("logs", "benchmarks", ".snakemake", "scratch")
#: File kinds compared, by suffix.
_TABLES = (".ecsv",)
_FITS = (".fits", ".fit", ".fts", ".wcs", ".corr", ".xyls", ".axy", ".rdls")
_JSON = (".json",)
#: Header cards of a solution compared as numbers.
_WCS_CARDS = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2")
_WCS_CARDS += ("CD2_1", "CD2_2", "A_ORDER", "B_ORDER")


def product_files(work: str | Path) -> list[str]:
    """Relative paths of the compared products of a work folder, sorted."""
    work = Path(work)
    kinds = _TABLES + _FITS + _JSON
    found = []
    for path in work.rglob("*"):
        rel = path.relative_to(work)
        if rel.parts[0] in SKIPPED_FOLDERS or not path.is_file():
            continue
        if path.suffix.lower() in kinds:
            found.append(rel.as_posix())
    return sorted(found)


def compare_work_dirs(first: str | Path, second: str | Path, limit: int = 50) -> list[str]:
    """What differs between the products of two work folders.

    Parameters
    ----------
    first, second : str or Path
        Work folders of two reductions of the same night.
    limit : int
        Stop after this many differences.

    Returns
    -------
    list of str
        One line per difference (``"<path>: <what>"``); empty when the products are equal.
    """
    first, second = Path(first), Path(second)
    paths = (str(first.resolve()), str(second.resolve()), str(first), str(second))
    a_files, b_files = set(product_files(first)), set(product_files(second))
    differences = [f"{name}: only in {first}" for name in sorted(a_files - b_files)]
    differences += [f"{name}: only in {second}" for name in sorted(b_files - a_files)]
    for name in sorted(a_files & b_files):
        if len(differences) >= limit:
            break
        suffix = Path(name).suffix.lower()
        sizes = ((first / name).stat().st_size, (second / name).stat().st_size)
        if 0 in sizes:  # placeholders (a step that had nothing to write)
            if sizes[0] != sizes[1]:
                differences.append(f"{name}: {sizes[0]} bytes against {sizes[1]}")
            continue
        try:
            if suffix in _TABLES:
                found = _table_differences(first / name, second / name, paths)
            elif suffix in _FITS:
                found = _fits_differences(first / name, second / name, paths)
            else:
                found = _json_differences(first / name, second / name, paths)
        except Exception as exc:  # an unreadable product is a difference, not a crash
            found = [f"cannot compare: {type(exc).__name__}: {exc}"]
        differences += [f"{name}: {what}" for what in found]
    return differences[:limit]


def _neutral(value: Any, paths: Iterable[str]) -> Any:
    """``value`` with either folder's path replaced by one placeholder (text only)."""
    if isinstance(value, str):
        for path in paths:
            value = value.replace(path, "<work>")
        return value
    if isinstance(value, dict):
        return {k: _neutral(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v, paths) for v in value]
    return value


def _column_differs(a: Any, b: Any, paths: Iterable[str]) -> bool:
    a = np.ma.asanyarray(a)
    b = np.ma.asanyarray(b)
    if a.shape != b.shape:
        return True
    if not np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)):
        return True
    a_data, b_data = np.ma.getdata(a), np.ma.getdata(b)
    keep = ~np.ma.getmaskarray(a)
    if a_data.dtype.kind in "fc" or b_data.dtype.kind in "fc":
        try:
            return not np.array_equal(a_data[keep], b_data[keep], equal_nan=True)
        except TypeError:
            pass
    if a_data.dtype.kind in "OUS" or b_data.dtype.kind in "OUS":
        a_text = [_neutral(str(v), paths) for v in a_data[keep].ravel()]
        b_text = [_neutral(str(v), paths) for v in b_data[keep].ravel()]
        return a_text != b_text
    return not np.array_equal(a_data[keep], b_data[keep])


def _tables_differ(a: Any, b: Any, paths: Iterable[str]) -> list[str]:
    if list(a.colnames) != list(b.colnames):
        return [f"columns differ: {list(a.colnames)} against {list(b.colnames)}"]
    if len(a) != len(b):
        return [f"{len(a)} rows against {len(b)}"]
    return [
        f"column {name} differs" for name in a.colnames if _column_differs(a[name], b[name], paths)
    ]


def _table_differences(a: Path, b: Path, paths: Iterable[str]) -> list[str]:
    from astropy.table import Table

    return _tables_differ(
        Table.read(a, format="ascii.ecsv"), Table.read(b, format="ascii.ecsv"), paths
    )


def _fits_differences(a: Path, b: Path, paths: Iterable[str]) -> list[str]:
    from astropy.io import fits
    from astropy.table import Table

    found = []
    with fits.open(a, memmap=False) as first, fits.open(b, memmap=False) as second:
        if len(first) != len(second):
            return [f"{len(first)} HDUs against {len(second)}"]
        for index, (x, y) in enumerate(zip(first, second, strict=True)):
            where = f"HDU {index} ({x.name})"
            for card in _WCS_CARDS:
                if x.header.get(card) != y.header.get(card):
                    found.append(
                        f"{where}: {card} {x.header.get(card)!r} against {y.header.get(card)!r}"
                    )
            if x.data is None and y.data is None:
                continue
            if (x.data is None) != (y.data is None):
                found.append(f"{where}: data in one file only")
            elif isinstance(x, fits.BinTableHDU | fits.TableHDU):
                found += [
                    f"{where}: {w}" for w in _tables_differ(Table(x.data), Table(y.data), paths)
                ]
            elif x.data.shape != y.data.shape:
                found.append(f"{where}: shape {x.data.shape} against {y.data.shape}")
            elif not np.array_equal(x.data, y.data, equal_nan=x.data.dtype.kind == "f"):
                changed = int(np.count_nonzero(x.data != y.data))
                found.append(f"{where}: {changed} pixels differ")
    return found


def _json_differences(a: Path, b: Path, paths: Iterable[str]) -> list[str]:
    first = _neutral(json.loads(a.read_text()), paths)
    second = _neutral(json.loads(b.read_text()), paths)
    return [] if first == second else ["contents differ"]
