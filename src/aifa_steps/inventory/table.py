"""Inventory of a night: what every raw file is, and whether it can be used.

Only headers are read, plus the file size to catch truncated files (a gzip-compressed file is
decompressed as a stream to count its real data size; see `aifa_steps.inventory.completeness`).
Frame types, filters and keywords are mapped through the configuration
(`aifa_steps.inventory.classify`), so nights from other observatories need no code change.
Why a file is left out is written with the reason codes of `aifa_steps.core.formats.Reason`.
Every OBJECT gets a file-safe name (column ``target``). Raw files are opened read-only and
never modified.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from aifa_steps.core.formats import NightProblem, Reason, frame_stem, safe_names
from aifa_steps.inventory.classify import FRAME_TYPES, canonical_filter, frame_type
from aifa_steps.inventory.completeness import completeness_problem
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
from aifa_steps.inventory.rawio import read_raw_header
from aifa_steps.inventory.readout import readout_for
from aifa_steps.inventory.settings import find_raw_files

__all__ = [
    "COLUMNS",
    "find_raw_files",
    "read_frame",
    "build_inventory",
    "night_problems",
    "InventoryError",
]

log = logging.getLogger(__name__)

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
        row.update(used=False, reason=f"{Reason.UNREADABLE_FITS}: {exc}".replace("\n", " "))
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
            layout_problem = f"{Reason.READOUT} {exc}"
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
        problems.append(
            f"{Reason.UNKNOWN_FRAME_TYPE} {row['imagetyp']!r} (keyword {named('imagetyp')})"
        )
    if row["naxis1"] is None or row["naxis2"] is None or header.get("NAXIS", 0) != 2:
        problems.append(Reason.NOT_AN_IMAGE.value)
    needed = ["exptime"]
    if kind in ("flat", "light"):
        needed.append("filter")
    if kind == "light":
        needed.append("object")
    for name in needed:
        if row[name] in (None, ""):
            problems.append(f"{Reason.MISSING_KEYWORD} {named(name)}")
    if time_problem:
        problems.append(time_problem)
    if layout_problem:
        problems.append(layout_problem)
    exptime = row["exptime"]
    if exptime is not None and not (np.isfinite(exptime) and (exptime > 0 or kind == "bias")):
        key, _ = numeric_keyword(header, "exptime", keys)
        problems.append(f"{Reason.EXPOSURE_TIME} {key} = {exptime:g} s is not positive")
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
                NightProblem.NO_BIAS.value,
                "no usable bias frames: the bias level is taken from the darks or estimated",
            )
        )
    if kinds["light"] and not kinds["dark"]:
        problems.append(
            (NightProblem.NO_DARK.value, "no usable dark frames: dark current is not subtracted")
        )
    flat_filters = {r["filter"] for r in kinds["flat"]}
    missing = sorted({r["filter"] for r in kinds["light"]} - flat_filters)
    if missing:
        problems.append(
            (
                NightProblem.NO_FLAT.value,
                f"no usable flats in filter(s) {missing}: those light frames are not flat-fielded",
            )
        )
    odd = [r for r in rows if r["reason"].startswith(Reason.MIXED_GEOMETRY)]
    if odd:
        problems.append(
            (
                NightProblem.MIXED_GEOMETRY.value,
                f"{len(odd)} frame(s) with another shape or binning are excluded",
            )
        )
    dark_times = {r["exptime"] for r in kinds["dark"]}
    light_times = {r["exptime"] for r in kinds["light"]}
    if dark_times and light_times - dark_times:
        problems.append(
            (
                NightProblem.UNMATCHED_DARK.value,
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
            f"{Reason.MIXED_GEOMETRY} from the night's {nx}x{ny} binned {bx}x{by}",
        )
    seen: dict[str, str] = {}
    for row in rows:
        if row["used"] and row["stem"] in seen:
            row.update(used=False, reason=f"{Reason.DUPLICATE_NAME} (also {seen[row['stem']]})")
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
