"""Inventory of a night: what every raw file is, and whether it can be used.

Only headers are read, plus the file size to catch truncated files (a gzip-compressed file is
decompressed as a stream to count its real data size; see `aifa_steps.inventory.rawio`).
Frame types, filters and keywords are mapped through the configuration, so nights from other
observatories need no code change. Every OBJECT gets a file-safe name (column ``target``). Raw
files are opened read-only and never modified.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from aifa_steps.core.formats import FITS_SUFFIXES, frame_stem, is_fits_name, safe_names
from aifa_steps.inventory.headers import (
    HeaderTimeError,
    binning,
    first_keyword,
    header_float,
    header_value,
    keywords_for,
    numeric_keyword,
    observation_time,
    parse_dec,
    parse_ra,
)
from aifa_steps.inventory.rawio import completeness_problem, read_raw_header
from aifa_steps.inventory.readout import readout_for

__all__ = [
    "FRAME_TYPES",
    "FITS_SUFFIXES",
    "find_raw_files",
    "frame_type",
    "canonical_filter",
    "read_frame",
    "build_inventory",
    "inventory_summary",
    "night_problems",
    "InventoryError",
    "inventory_html",
]

log = logging.getLogger(__name__)

FRAME_TYPES = ("bias", "dark", "flat", "light")
_FOLDER_TYPES = {
    "bias": "bias",
    "biases": "bias",
    "zero": "bias",
    "offset": "bias",
    "dark": "dark",
    "darks": "dark",
    "flat": "flat",
    "flats": "flat",
    "light": "light",
    "lights": "light",
    "science": "light",
}

COLUMNS = (
    "path",
    "stem",
    "imagetyp",
    "filter",
    "exptime",
    "object",
    "target",
    "date_obs",
    "mjd",
    "xbinning",
    "ybinning",
    "naxis1",
    "naxis2",
    "airmass",
    "ra",
    "dec",
    "gain",
    "read_noise",
    "saturation",
    "used",
    "reason",
)


def find_raw_files(raw_dir: str | Path) -> list[Path]:
    """All FITS files below ``raw_dir`` (recursively), sorted by path."""
    root = Path(raw_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"raw folder {root} does not exist or is not a folder")
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and is_fits_name(p) and "truth" not in p.relative_to(root).parts
    ]
    return sorted(files)


_TYPE_WORDS = {
    "bias": ("bias", "zero", "offset"),
    "dark": ("dark",),
    "flat": ("flat", "skyflat", "domeflat", "twflat", "flatfield"),
    "light": ("light", "lights", "object", "science", "sci"),
}


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z]+", text.lower()) if w]


def _type_from_words(text: str, plural: bool = False) -> str | None:
    words = _words(text)
    for kind, stems in _TYPE_WORDS.items():
        for word in words:
            base = word[:-1] if plural and word.endswith("s") and word[:-1] in stems else word
            if base in stems or (kind == "flat" and base.endswith("flat")):
                return kind
    return None


def frame_type(
    value: object, aliases: dict[str, list[str]], path: Path | None = None
) -> str | None:
    """The frame type (bias, dark, flat, light) of a header value, or of the file's name.

    Tried in order: the configured aliases (``frame_types``); the words of the value as
    camera software writes them (NINA ``LIGHT``, MaxIm DL ``Light Frame``/``Flat Field``,
    IRAF-style ``OBJECT``, ``ZERO``, ``SKYFLAT``, ``DOMEFLAT``); then, when the header has no
    frame type at all, the names of the file's folders (``BIAS/``, ``zero/``, ``flats/``, ...)
    and of the file itself (``flat_r_001.fits``); and finally, for a file that says nothing
    about its type anywhere, ``light`` (a night of science frames only).

    Parameters
    ----------
    value : object
        The header value (None when the keyword is missing).
    aliases : dict
        Frame type -> accepted header values (case-insensitive).
    path : pathlib.Path, optional
        The file; its folder and file names are the fallback.

    Returns
    -------
    str or None
        The frame type, or None for a header value that names none of them (e.g. ``FOCUS``).
    """
    text = "" if value is None else str(value).strip().lower()
    if text:
        for kind in FRAME_TYPES:
            if text in {a.strip().lower() for a in aliases.get(kind, [])}:
                return kind
        kind = _type_from_words(text)
        if kind:
            return kind
    if path is not None:
        # Any folder named like a frame type; words in names only for the file's own folder
        # (a parent such as /data/dark_sky_survey/ says nothing about the frames).
        for part in reversed(path.parent.parts):
            kind = _FOLDER_TYPES.get(part.lower())
            if kind:
                return kind
        kind = _type_from_words(path.parent.name, plural=True)
        if kind:
            return kind
        kind = _type_from_words(frame_stem(path), plural=True)
        if kind:
            return kind
    return "light" if not text else None


def canonical_filter(value: object, aliases: dict[str, list[str]]) -> str | None:
    """The canonical filter name for a header value; the value itself when no alias matches."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    for name, names in aliases.items():
        if text.lower() == name.lower() or text.lower() in {a.strip().lower() for a in names}:
            return name
    return text


def read_frame(path: Path, config: dict) -> dict:
    """Describe one raw file from its header; ``reason`` says why it cannot be used.

    Parameters
    ----------
    path : pathlib.Path
        The raw FITS file.
    config : dict
        The workflow configuration (``headers``, ``frame_types``, ``filters`` sections).

    Returns
    -------
    dict
        One inventory row (see `COLUMNS`).
    """
    keys = config.get("headers") or {}
    aliases = config.get("frame_types") or {}
    filters = config.get("filters") or {}
    row = {c: None for c in COLUMNS}
    row.update(path=str(path), stem=frame_stem(path), used=True, reason="")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            # The merged header of plain, compressed and multi-extension files: NAXIS,
            # NAXIS1 and NAXIS2 are those of the image HDU.
            header, _ = read_raw_header(path)
            truncated = completeness_problem(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is flagged, not fatal
        row.update(used=False, reason=f"unreadable FITS: {exc}".replace("\n", " "))
        # The folder still tells what it was meant to be (the night's status lists it so).
        row["imagetyp"] = frame_type(None, aliases, path) or ""
        return row
    if truncated:
        row.update(used=False, reason=truncated)

    kind = frame_type(header_value(header, "imagetyp", keys), aliases, path)
    row["imagetyp"] = kind or str(header_value(header, "imagetyp", keys))
    row["filter"] = canonical_filter(header_value(header, "filter", keys), filters) or ""
    row["object"] = str(header_value(header, "object", keys) or "").strip()
    row["naxis1"] = header.get("NAXIS1")
    row["naxis2"] = header.get("NAXIS2")
    layout_problem = ""
    if row["naxis1"] and row["naxis2"]:
        try:  # the image's size after overscan and trim
            layout = readout_for(header, config.get("readout"))
            row["naxis2"], row["naxis1"] = layout.output_shape
        except ValueError as exc:
            layout_problem = f"readout: {exc}"
    row["xbinning"], row["ybinning"] = binning(header, keys)
    for name in ("exptime", "airmass", "gain", "read_noise", "saturation"):
        row[name] = header_float(header, name, keys)
    row["ra"] = parse_ra(header_value(header, "ra", keys))
    row["dec"] = parse_dec(header_value(header, "dec", keys))
    _, date = first_keyword(header, keywords_for("date_obs", keys))
    row["date_obs"] = str(date or "").strip()
    time_problem = ""
    try:
        row["mjd"], _ = observation_time(
            header, keys, float(keys.get("date_obs_utc_offset_hours", 0.0))
        )
    except HeaderTimeError as exc:
        time_problem = str(exc)

    def named(name: str) -> str:
        return "/".join(keywords_for(name, keys))

    problems = []
    if kind is None:
        problems.append(f"unknown frame type {row['imagetyp']!r} (keyword {named('imagetyp')})")
    if row["naxis1"] is None or row["naxis2"] is None or header.get("NAXIS", 0) != 2:
        problems.append("not a 2-D image")
    needed = ["exptime"]
    if kind in ("flat", "light"):
        needed.append("filter")
    if kind == "light":
        needed.append("object")
    for name in needed:
        if row[name] in (None, ""):
            problems.append(f"missing keyword {named(name)}")
    if time_problem:
        problems.append(time_problem)
    if layout_problem:
        problems.append(layout_problem)
    exptime = row["exptime"]
    if exptime is not None and not (np.isfinite(exptime) and (exptime > 0 or kind == "bias")):
        key, _ = numeric_keyword(header, "exptime", keys)
        problems.append(f"exposure time {key} = {exptime:g} s is not positive")
    if problems and row["used"]:
        row.update(used=False, reason="; ".join(problems))
    elif problems:
        row["reason"] = "; ".join([row["reason"], *problems])
    return row


def _exclude(rows: list[dict], select, reason: str) -> None:
    for row in rows:
        if row["used"] and select(row):
            row["used"] = False
            row["reason"] = reason


class InventoryError(RuntimeError):
    """A problem of the whole night that the configuration declares fatal."""


def night_problems(rows: list[dict]) -> list[tuple[str, str]]:
    """Problems of the night as a whole, as (category, message) pairs.

    Categories: ``no_bias``, ``no_dark``, ``no_flat`` (a filter of light frames without flats),
    ``mixed_geometry`` (frames excluded for their shape or binning), ``unmatched_dark`` (light
    exposure times without darks of the same length: the darks are scaled).
    """
    used = [r for r in rows if r["used"]]
    kinds = {k: [r for r in used if r["imagetyp"] == k] for k in FRAME_TYPES}
    problems = []
    if not kinds["bias"]:
        problems.append(
            (
                "no_bias",
                "no usable bias frames: the bias level is taken from the darks or estimated",
            )
        )
    if kinds["light"] and not kinds["dark"]:
        problems.append(("no_dark", "no usable dark frames: dark current is not subtracted"))
    flat_filters = {r["filter"] for r in kinds["flat"]}
    missing = sorted({r["filter"] for r in kinds["light"]} - flat_filters)
    if missing:
        problems.append(
            (
                "no_flat",
                f"no usable flats in filter(s) {missing}: those light frames are not flat-fielded",
            )
        )
    odd = [r for r in rows if r["reason"].startswith("shape or binning differs")]
    if odd:
        problems.append(
            ("mixed_geometry", f"{len(odd)} frame(s) with another shape or binning are excluded")
        )
    dark_times = {r["exptime"] for r in kinds["dark"]}
    light_times = {r["exptime"] for r in kinds["light"]}
    if dark_times and light_times - dark_times:
        problems.append(
            (
                "unmatched_dark",
                f"no darks of {sorted(light_times - dark_times)} s: "
                f"darks of {sorted(dark_times)} s are scaled",
            )
        )
    return problems


def build_inventory(raw_dir: str | Path, config: dict, raise_fatal: bool = True) -> Table:
    """Scan a night and decide which frames are used.

    Checks beyond single files: frames whose binning or shape differ from the night's most
    common one are excluded; a repeated file name is excluded. Light frames in a filter
    without flats are kept (they are calibrated without a flat) and reported as the night
    problem ``no_flat``. Problems of the night as a whole (see `night_problems`) are logged
    and stored in ``meta["problems"]``; with ``raise_fatal`` those listed in
    ``config["inventory"]["fatal"]`` (default: none) raise `InventoryError`.

    Every light frame's OBJECT gets a file-safe name, column ``target``, used for all paths
    (`aifa_steps.core.formats.safe_names`).

    Parameters
    ----------
    raw_dir : str or Path
        The night folder.
    config : dict
        The workflow configuration.
    raise_fatal : bool
        Raise for fatal problems (the workflow instead writes the inventory and stops with a
        message naming it).

    Returns
    -------
    astropy.table.Table
        One row per file (see `COLUMNS`), ordered by frame type and time.
    """
    fatal_problems = config.get("inventory", {}).get("fatal", [])
    files = find_raw_files(raw_dir)
    if not files:
        raise FileNotFoundError(f"no FITS files found below {raw_dir}")
    rows = [read_frame(p, config) for p in files]
    good = [r for r in rows if r["used"]]
    if good:
        geometry = Counter((r["naxis1"], r["naxis2"], r["xbinning"], r["ybinning"]) for r in good)
        (nx, ny, bx, by), _ = geometry.most_common(1)[0]
        _exclude(
            rows,
            lambda r: (r["naxis1"], r["naxis2"], r["xbinning"], r["ybinning"]) != (nx, ny, bx, by),
            f"shape or binning differs from the night's {nx}x{ny} binned {bx}x{by}",
        )
    seen: dict[str, str] = {}
    for row in rows:
        if row["used"] and row["stem"] in seen:
            row.update(used=False, reason=f"duplicate file name (also {seen[row['stem']]})")
        elif row["used"]:
            seen[row["stem"]] = row["path"]
    targets = safe_names(r["object"] for r in rows if r["object"])
    for row in rows:
        row["target"] = targets.get(row["object"], "") if row["object"] else ""
    problems = night_problems(rows)
    for row in rows:
        if not row["used"]:
            log.warning("excluded %s: %s", row["path"], row["reason"])
    for category, message in problems:
        log.warning("%s: %s", category, message)
    fatal = [(c, m) for c, m in problems if c in set(fatal_problems)]
    if fatal and raise_fatal:
        raise InventoryError(
            "; ".join(f"{m} [{c}]" for c, m in fatal)
            + " (these problems are fatal by the configuration's inventory.fatal)"
        )

    types = dict(
        zip(
            COLUMNS,
            (
                str,
                str,
                str,
                str,
                float,
                str,
                str,
                str,
                float,
                int,
                int,
                int,
                int,
                float,
                float,
                float,
                float,
                float,
                float,
                bool,
                str,
            ),
            strict=True,
        )
    )
    missing = {str: "", float: np.nan, int: 0, bool: False}
    table = Table(
        {
            c: np.array([missing[t] if r[c] is None else t(r[c]) for r in rows], dtype=t)
            for c, t in types.items()
        }
    )
    kind_rank = [
        FRAME_TYPES.index(t) if t in FRAME_TYPES else len(FRAME_TYPES) for t in table["imagetyp"]
    ]
    order = np.lexsort((np.nan_to_num(table["mjd"], nan=np.inf), kind_rank))
    table = table[order]
    table.meta["problems"] = [[c, m] for c, m in problems]
    return table


def inventory_summary(table: Table) -> Table:
    """Frame counts per type, filter, exposure time and object (used and excluded)."""
    groups: dict[tuple, list[int]] = {}
    for row in table:
        key = (row["imagetyp"], row["filter"], float(row["exptime"]), row["object"])
        counts = groups.setdefault(key, [0, 0])
        counts[0 if row["used"] else 1] += 1
    rows = [
        (*k, v[0], v[1])
        for k, v in sorted(
            groups.items(),
            key=lambda kv: (
                FRAME_TYPES.index(kv[0][0]) if kv[0][0] in FRAME_TYPES else 9,
                kv[0][1:],
            ),
        )
    ]
    return (
        Table(
            rows=rows,
            names=("imagetyp", "filter", "exptime", "object", "used", "excluded"),
            dtype=(str, str, float, str, int, int),
        )
        if rows
        else Table()
    )


def inventory_html(table: Table) -> str:
    """A self-contained HTML page with the inventory summary and the excluded frames."""
    import html

    def to_html(t: Table) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in t.colnames)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in t
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    excluded = table[~table["used"]]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Inventory</title>",
        "<style>body{font-family:sans-serif} table{border-collapse:collapse;margin:1em 0}"
        " td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}"
        " th{background:#eee}</style></head><body>",
        f"<h2>Inventory: {len(table)} files, {int(table['used'].sum())} used</h2>",
        to_html(inventory_summary(table)),
        f"<h3>Excluded frames ({len(excluded)})</h3>",
        to_html(excluded["path", "imagetyp", "filter", "reason"])
        if len(excluded)
        else "<p>None.</p>",
        "<h3>All frames</h3>",
        to_html(
            table["stem", "imagetyp", "filter", "exptime", "object", "date_obs", "airmass", "used"]
        ),
        "</body></html>",
    ]
    return "\n".join(parts)
