"""Problems of the night as a whole, and the night's status: what happened to every frame.

Three kinds of answers, each given once and early:

- configuration that contradicts itself, and programs or index files the night needs but
  this machine lacks: `config_problems` and `missing_tools`, checked before any job starts;
- a night whose light frames are all excluded, or whose inventory shows a problem the
  configuration declares fatal: `inventory_verdict`, checked as soon as the inventory exists;
- a night where nothing could be solved: `night_verdict` after the night summary is written.

`night_status` joins the inventory, the astrometry status and the zero points into one row
per raw file (``night_status.ecsv``), and `night_summary_html` turns it into the report's
summary page.
"""

from __future__ import annotations

import html
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy.table import Table

from aifa_steps.core.formats import safe_name

__all__ = [
    "TOOLS",
    "missing_tools",
    "config_problems",
    "config_warnings",
    "inventory_verdict",
    "fix_hint",
    "night_status",
    "night_verdict",
    "night_summary_html",
    "zeropoint_notes",
    "calibration_notes",
    "read_verdict",
    "text_filled",
]

#: Programs the workflow calls: (program, Debian package, what for, needed only when).
TOOLS = (
    ("solve-field", "astrometry.net", "astrometric solutions", None),
    ("source-extractor", "source-extractor", "the source lists solve-field reads", None),
    ("build-astrometry-index", "astrometry.net", "index files", "build_index"),
)


def missing_tools(config: Mapping, which=shutil.which) -> list[str]:
    """Messages for the programs the configuration needs that are not installed.

    Parameters
    ----------
    config : mapping
        The workflow configuration.
    which : callable
        Program lookup (``shutil.which``; replaceable in tests).
    """
    astro = config.get("astrometry", {})
    problems = []
    for program, package, purpose, only_when in TOOLS:
        if only_when and not astro.get(only_when, True):
            continue
        if which(program) is None:
            problems.append(
                f"{program} is not installed (needed for {purpose}). Install it with "
                f"'sudo apt-get install {package}' (Debian/Ubuntu), or 'make setup', or use "
                "the conda environment of environment.yml."
            )
    return problems


def _index_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.fits") if p.is_file()) if folder.is_dir() else []


def config_problems(config: Mapping, check_files: bool = True) -> list[str]:
    """Keys of the configuration that contradict each other or point at nothing.

    Parameters
    ----------
    config : mapping
        The validated workflow configuration (defaults filled in).
    check_files : bool
        Also check that files and folders named by the configuration exist (off while the
        simulated night that holds them is still to be made).

    Returns
    -------
    list of str
        One message per problem, naming the keys and the fix.
    """
    problems = []
    from aifa_steps.photometry.aperture_plans import catalogue_aperture_key

    try:
        catalogue_aperture_key(config.get("photometry", {}), config.get("zeropoints", {}))
    except ValueError as error:
        problems.append(str(error))
    astro = config.get("astrometry", {})
    dirs = [Path(d) for d in astro.get("index_dirs", [])]
    if not astro.get("build_index", True) and not dirs:
        problems.append(
            "astrometry.build_index is false and astrometry.index_dirs is empty: solve-field "
            "would have no index files. Set build_index: true, or install index files "
            "(Debian: sudo apt-get install astrometry-data-tycho2) and set "
            "index_dirs: [/usr/share/astrometry]"
        )
    for folder in dirs:
        if not folder.is_dir():
            problems.append(
                f"astrometry.index_dirs names {folder}, which does not exist (Debian's "
                "astrometry-data-tycho2 packages install to /usr/share/astrometry)"
            )
        elif not _index_files(folder):
            problems.append(
                f"astrometry.index_dirs names {folder}, which holds no index files (*.fits): "
                "install them (Debian: sudo apt-get install astrometry-data-tycho2) or "
                "remove the folder from the list"
            )
    if not astro.get("max_rms_arcsec", 0.5) and not astro.get("max_rms_pixels", 0.5):
        problems.append(
            "astrometry.max_rms_arcsec and astrometry.max_rms_pixels are both 0: every frame "
            "would fail its astrometry. Set one of them, e.g. max_rms_pixels: 0.5"
        )
    refcat = config.get("reference_catalogue", {})
    if refcat.get("source", "vizier") == "file":
        path = refcat.get("path")
        if not path:
            problems.append(
                "reference_catalogue.source is 'file' but reference_catalogue.path is not set"
            )
        elif check_files and not Path(path).is_file():
            problems.append(
                f"reference_catalogue.path {path} does not exist (source: file); give the "
                "catalogue's path, or set reference_catalogue.source: vizier"
            )
    for name, target in (config.get("targets") or {}).items():
        if target.get("kind") == "transit":
            ephemeris = target.get("ephemeris") or {}
            missing = [k for k in ("t0_bjd_tdb", "period_days") if k not in ephemeris]
            if missing:
                problems.append(
                    f"targets.{name} is a transit target but targets.{name}.ephemeris lacks "
                    f"{' and '.join(missing)}: the transit fit needs them (or set kind: field)"
                )
    return problems


def _target_keys(name: str) -> set[str]:
    return {str(name).strip(), safe_name(name)}


def config_warnings(config: Mapping, inventory: Table) -> list[str]:
    """Targets and filters of the configuration that the night has no frames of.

    Parameters
    ----------
    config : mapping
        The workflow configuration.
    inventory : astropy.table.Table
        The night's inventory.
    """
    warnings = []
    inventory = text_filled(inventory)
    lights = inventory[(inventory["imagetyp"] == "light") & inventory["used"]]
    observed: dict[str, set[str]] = {}
    for row in lights:
        for key in _target_keys(row["object"]):
            observed.setdefault(key, set()).add(str(row["filter"]))
    for name, target in (config.get("targets") or {}).items():
        filters = set().union(*(observed.get(k, set()) for k in _target_keys(name)))
        if not filters:
            warnings.append(
                f"targets.{name} has no usable light frame in this night (OBJECT values of "
                f"the night: {sorted(set(lights['object'])) or 'none'})"
            )
            continue
        for band in target.get("filters", []) or []:
            if band not in filters:
                warnings.append(
                    f"targets.{name}.filters lists {band}, but the night has no {name} frames "
                    f"in {band} (only {sorted(filters)})"
                )
    return warnings


#: What to do about the usual reasons a frame is excluded (reason prefix -> fix).
_HINTS = (
    (
        "missing keyword",
        "set the headers section of the configuration to the keywords your camera writes "
        "(fitsheader FILE lists them; python -m aifa_steps.init RAW_DIR drafts it)",
    ),
    (
        "unknown frame type",
        "add the header value to frame_types (e.g. frame_types.light), or sort the files "
        "into BIAS/ DARK/ FLAT/ LIGHT/ folders",
    ),
    ("unreadable FITS", "copy the files again from the camera computer"),
    ("truncated", "copy the files again from the camera computer"),
    (
        "no time of day",
        "set headers.time_obs to the keyword that holds the time of the exposure start",
    ),
    ("readout:", "check the readout section (overscan and trim sections of the frames)"),
    ("unreadable", "check headers.date_obs and headers.date_obs_utc_offset_hours"),
    (
        "shape or binning differs",
        "reduce frames of one binning and read-out area per night (one configuration each)",
    ),
    ("exposure time", "check headers.exptime: it must name the exposure time in seconds"),
    ("not a 2-D image", "these files hold no image; leave them out of raw_dir"),
    ("duplicate file name", "give every raw file its own name"),
)


def fix_hint(reason: str) -> str:
    """What to do about a reason of the inventory ('' when there is no general advice)."""
    text = reason.lower()
    for prefix, hint in _HINTS:
        if prefix.lower() in text:
            return hint
    return ""


def _reason_counts(reasons: Iterable[str], indent: str = "  ") -> str:
    counts = Counter(str(r) or "(no reason)" for r in reasons)
    lines = []
    for reason, n in counts.most_common():
        hint = fix_hint(reason)
        lines.append(f"{indent}{n} x {reason}" + (f"\n{indent}    fix: {hint}" if hint else ""))
    return "\n".join(lines)


def inventory_verdict(inventory: Table, fatal: Iterable[str], where: str | Path) -> str | None:
    """The message that stops the night after its inventory, or None when it can go on.

    The night stops when no light frame is usable, or when the inventory found a problem
    that ``inventory.fatal`` lists.

    Parameters
    ----------
    inventory : astropy.table.Table
        The inventory (its ``meta["problems"]`` holds ``[category, message]`` pairs).
    fatal : iterable of str
        The categories the configuration declares fatal.
    where : str or Path
        The inventory's path, named in the message.
    """
    problems = [tuple(p) for p in inventory.meta.get("problems", [])]
    chosen = [(c, m) for c, m in problems if c in set(fatal)]
    if chosen:
        lines = [f"  {m} [{c}]" for c, m in chosen]
        return (
            "This night stops here: the inventory found problems that the configuration's "
            "inventory.fatal declares fatal:\n"
            + "\n".join(lines)
            + f"\nEvery file and its reason: {where}. Fix: add the missing frames to the raw "
            "folder, or remove the problem from inventory.fatal to reduce the night without "
            "them."
        )
    inventory = text_filled(inventory)
    lights = inventory[inventory["imagetyp"] == "light"]
    if len(lights) == 0:
        kinds = Counter(str(k) for k in inventory["imagetyp"])
        return (
            f"This night has no light frame: the inventory of {len(inventory)} files found "
            f"{dict(kinds)}. Fix: check raw_dir, and that frame_types.light lists the value "
            "your camera writes for science frames (or put them in a LIGHT/ folder). "
            f"Every file: {where}."
        )
    if not lights["used"].any():
        return (
            f"No light frame of this night can be used: all {len(lights)} are excluded.\n"
            + _reason_counts(lights["reason"])
            + f"\nEvery file and its reason: {where} (and qc/inventory.html)."
        )
    return None


STATUS_COLUMNS = (
    "path",
    "stem",
    "imagetyp",
    "object",
    "target",
    "filter",
    "status",
    "step",
    "reason",
    "note",
)


def text_filled(table: Table | None) -> Table | None:
    """The table with masked text (empty strings read back from ECSV) as ``''``.

    ECSV writes an empty string as a missing value, which astropy reads back masked (``--``).
    """
    if table is None or not table.has_masked_values:
        return table
    table = table.copy()
    for name in table.colnames:
        column = table[name]
        if getattr(column, "mask", None) is not None and column.dtype.kind in "US":
            table[name] = column.filled("")
    return table


def _rows_by(table: Table | None, key: str) -> dict[str, list]:
    rows: dict[str, list] = {}
    if table is None or len(table) == 0 or key not in table.colnames:
        return rows
    for row in table:
        rows.setdefault(str(row[key]), []).append(row)
    return rows


def night_status(
    inventory: Table,
    astrometry: Table | None = None,
    zeropoints: Table | None = None,
    flat_frames: Iterable[Table] = (),
) -> Table:
    """What happened to every raw file of the night.

    Parameters
    ----------
    inventory : astropy.table.Table
        The inventory.
    astrometry : astropy.table.Table, optional
        ``astrometry/status.ecsv`` (every light that was calibrated, with ``solved``, ``step``
        and ``reason``).
    zeropoints : astropy.table.Table, optional
        ``zeropoints.ecsv`` (rows of failed photometry carry ``photometry failed: ...``).
    flat_frames : iterable of Table
        ``qc/flat_frames_<filter>.ecsv`` tables (flats the master flat rejected).

    Returns
    -------
    astropy.table.Table
        One row per raw file: ``path``, ``stem``, ``imagetyp``, ``object`` (as in the header),
        ``target`` (its file-safe name), ``filter``, ``status`` (``used``, ``excluded``,
        ``failed``), ``step`` (where it stopped: ``inventory``, ``master_flat``,
        ``calibration``, ``astrometry``, ``photometry``), ``reason``, ``note`` (what is
        missing for a used frame, e.g. its zero point).
    """
    inventory, astrometry, zeropoints = map(text_filled, (inventory, astrometry, zeropoints))
    flat_frames = [text_filled(t) for t in flat_frames]
    solved = _rows_by(astrometry, "stem")
    zps = _rows_by(zeropoints, "stem")
    rejected_flats = {}
    for table in flat_frames:
        for row in table:
            if not row["used"]:
                rejected_flats[str(row["path"])] = str(row["reason"])
    rows = []
    for row in inventory:
        target = str(row["target"]) if "target" in inventory.colnames else ""
        out = {
            "path": str(row["path"]),
            "stem": str(row["stem"]),
            "imagetyp": str(row["imagetyp"]),
            "object": str(row["object"]),
            "target": target,
            "filter": str(row["filter"]),
            "status": "used",
            "step": "",
            "reason": "",
            "note": "",
        }
        if not row["used"]:
            out.update(status="excluded", step="inventory", reason=str(row["reason"]))
        elif out["path"] in rejected_flats:
            out.update(status="excluded", step="master_flat", reason=rejected_flats[out["path"]])
        elif out["imagetyp"] == "light" and astrometry is not None:
            status = solved.get(out["stem"])
            if not status:
                out.update(status="failed", step="astrometry", reason="no astrometry status")
            elif not bool(status[0]["solved"]):
                step = str(status[0]["step"]) if "step" in astrometry.colnames else ""
                out.update(
                    status="failed", step=step or "astrometry", reason=str(status[0]["reason"])
                )
            elif zeropoints is not None:
                mine = zps.get(out["stem"], [])
                reasons = [str(r["reason"]) for r in mine if str(r["reason"])]
                if not mine:
                    out.update(status="failed", step="photometry", reason="no photometry")
                elif any(r.startswith("photometry failed") for r in reasons):
                    reason = next(r for r in reasons if r.startswith("photometry failed"))
                    out.update(
                        status="failed",
                        step="photometry",
                        reason=reason.removeprefix("photometry failed: "),
                    )
                elif reasons:
                    finite = [r for r in mine if np.isfinite(float(r["zeropoint"]))]
                    out["note"] = (
                        f"no zero point in {len(mine) - len(finite)} of {len(mine)} "
                        f"apertures: {reasons[0]}"
                    )
        rows.append(out)
    table = Table(rows=rows, names=STATUS_COLUMNS, dtype=[str] * len(STATUS_COLUMNS))
    return table


def night_verdict(status: Table, astrometry_done: bool = True) -> tuple[bool, str]:
    """Whether the night produced anything, and the one message that says so.

    Returns
    -------
    fatal : bool
        True when no light frame was solved (nothing could be measured).
    message : str
        A summary line (and for a fatal night, the reasons with their counts and the fix).
    """
    lights = status[status["imagetyp"] == "light"]
    used = lights[lights["status"] == "used"]
    left_out = lights[lights["status"] != "used"]
    if astrometry_done and len(lights) and len(used) == 0:
        calibrated = left_out[left_out["step"] != "inventory"]
        return True, (
            f"Nothing solved: none of the {len(lights)} light frames of this night has an "
            "astrometric solution, so nothing could be measured.\n"
            + _reason_counts(
                [f"{r['step']}: {r['reason']}" for r in left_out] if len(left_out) else []
            )
            + "\nEvery frame and its reason: night_status.ecsv and qc/night_summary.html. "
            + (
                "Fix: check that the header pointing (RA/DEC) and instrument.pixel_scale are "
                "right, that the reference catalogue covers the field, and the logs in "
                "logs/solve_field/; frames lost to clouds cannot be solved."
                if len(calibrated)
                else ""
            )
        )
    message = f"Night summary: {len(used)} of {len(lights)} light frames reduced"
    if len(left_out):
        steps = Counter(str(s) for s in left_out["step"])
        message += "; left out: " + ", ".join(f"{n} at {s}" for s, n in sorted(steps.items()))
        message += " (reasons in night_status.ecsv, qc/night_summary.html)"
    return False, message + "."


def calibration_notes(inventory: Table, flat_frames: Iterable[Table] = ()) -> list[str]:
    """What the calibration of the night's lights could apply, and what it lacked.

    Parameters
    ----------
    inventory : astropy.table.Table
        The inventory.
    flat_frames : iterable of Table
        ``qc/flat_frames_<filter>.ecsv`` tables.
    """
    inventory = text_filled(inventory)
    used = inventory[inventory["used"]]
    kinds = {k: used[used["imagetyp"] == k] for k in ("bias", "dark", "flat", "light")}
    notes = []
    darks = kinds["dark"]
    if len(kinds["bias"]):
        notes.append(f"bias: master of {len(kinds['bias'])} frames")
    elif len(darks):
        notes.append("bias: none in this night; the darks carry the bias level (used unscaled)")
    else:
        notes.append(
            "bias: none in this night; instrument.bias_level is subtracted if set, otherwise "
            "uncertainties come from each frame's measured sky noise"
        )
    if len(darks):
        times = sorted({float(t) for t in darks["exptime"]})
        notes.append(f"dark: {len(darks)} frames of {', '.join(f'{t:g}' for t in times)} s")
    else:
        notes.append("dark: none in this night; dark current is not subtracted")
    band_of = dict(zip(kinds["flat"]["path"], kinds["flat"]["filter"], strict=True))
    used_flats: dict[str, list[int]] = {}
    for table in flat_frames:
        for row in table:
            band = str(band_of.get(row["path"], "?"))
            used_flats.setdefault(band, [0, 0])[0 if row["used"] else 1] += 1
    for band in sorted(set(kinds["light"]["filter"])):
        counts = used_flats.get(band)
        n_flats = int(np.sum(kinds["flat"]["filter"] == band))
        if n_flats == 0:
            notes.append(f"flat {band}: none in this night; {band} frames are not flat-fielded")
        elif counts and counts[0] == 0:
            notes.append(
                f"flat {band}: all {n_flats} flats rejected (qc/flat_frames_{band}.ecsv); "
                f"{band} frames are not flat-fielded"
            )
        elif counts:
            notes.append(f"flat {band}: master of {counts[0]} flats ({counts[1]} rejected)")
        else:
            notes.append(f"flat {band}: {n_flats} flats")
    return notes


def _html_table(table: Table, columns: Iterable[str]) -> str:
    columns = [c for c in columns if c in table.colnames]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in columns) + "</tr>"
        for row in table
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _counts_table(status: Table) -> Table:
    lights = status[status["imagetyp"] == "light"]
    groups: dict[tuple[str, str], Counter] = {}
    for row in lights:
        key = (str(row["object"]), str(row["filter"]))
        groups.setdefault(key, Counter())[str(row["status"])] += 1
    rows = [
        (obj, band, sum(c.values()), c["used"], c["excluded"], c["failed"])
        for (obj, band), c in sorted(groups.items())
    ]
    return Table(
        rows=rows or None,
        names=("object", "filter", "frames", "reduced", "excluded", "failed"),
        dtype=(str, str, int, int, int, int),
    )


def zeropoint_notes(zeropoints: Table | None, catalogues: dict[str, Table]) -> list[str]:
    """Why a target's magnitudes stay instrumental: one line per target without zero points.

    Parameters
    ----------
    zeropoints : astropy.table.Table or None
        The night's ``zeropoints.ecsv`` (None when nothing was solved).
    catalogues : dict
        Target -> its reference catalogue extract (``refcat/<target>.ecsv``).

    Returns
    -------
    list of str
        E.g. ``Qatar-1: no zero points, magnitudes are instrumental: the reference catalogue
        has no stars within 0.5 deg (source ...)``; empty when every target has zero points.
    """
    if zeropoints is None or len(zeropoints) == 0:
        return []
    notes = []
    zp = np.asarray(zeropoints["zeropoint"], dtype=float)
    key = "target" if "target" in zeropoints.colnames else "object"
    objects = np.asarray(zeropoints[key]).astype(str)
    for target in sorted(set(objects)):
        if np.isfinite(zp[objects == target]).any():
            continue
        catalogue = catalogues.get(target)
        if catalogue is not None and len(catalogue) == 0:
            source = catalogue.meta.get("source", "")
            why = "the reference catalogue has no stars in this field" + (
                f" (source {source}; offline? see reference_catalogue)" if source else ""
            )
        else:
            reasons = text_filled(zeropoints[objects == target])["reason"]
            why = Counter(str(r) for r in reasons if str(r)).most_common(1)
            why = why[0][0] if why else "no frame could be calibrated"
        notes.append(f"{target}: no zero points, magnitudes are instrumental: {why}")
    return notes


def night_summary_html(
    status: Table,
    verdict: str,
    warnings: Iterable[str] = (),
    calibration: Iterable[str] = (),
    photometry: Iterable[str] = (),
) -> str:
    """A self-contained HTML page: the verdict, counts per target, every frame left out.

    Parameters
    ----------
    status : astropy.table.Table
        `night_status` of the night.
    verdict : str
        `night_verdict`'s message.
    warnings : iterable of str
        Configuration warnings (`config_warnings`) and other notes.
    calibration : iterable of str
        What the calibration applied and what the night lacked.
    photometry : iterable of str
        Notes on the photometric calibration (`zeropoint_notes`).
    """
    left_out = status[status["status"] != "used"]
    notes = status[(status["status"] == "used") & (status["note"] != "")]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Night summary</title>",
        "<style>body{font-family:sans-serif} table{border-collapse:collapse;margin:1em 0}"
        " td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}"
        " th{background:#eee} .warn{color:#a40}</style></head><body>",
        "<h2>Night summary</h2>",
        "".join(f"<p>{html.escape(line)}</p>" for line in verdict.splitlines()),
        "<h3>Light frames per target and filter</h3>",
        _html_table(
            _counts_table(status), ("object", "filter", "frames", "reduced", "excluded", "failed")
        ),
    ]
    calibration = list(calibration)
    if calibration:
        parts.append("<h3>Calibration</h3><ul>")
        parts += [f"<li>{html.escape(c)}</li>" for c in calibration]
        parts.append("</ul>")
    photometry = list(photometry)
    if photometry:
        parts.append("<h3>Zero points</h3><ul>")
        parts += [f"<li class='warn'>{html.escape(p)}</li>" for p in photometry]
        parts.append("</ul>")
    warnings = list(warnings)
    if warnings:
        parts.append("<h3>Warnings</h3><ul>")
        parts += [f"<li class='warn'>{html.escape(w)}</li>" for w in warnings]
        parts.append("</ul>")
    parts.append(f"<h3>Frames left out ({len(left_out)})</h3>")
    parts.append(
        _html_table(left_out, ("stem", "imagetyp", "object", "filter", "status", "step", "reason"))
        if len(left_out)
        else "<p>None.</p>"
    )
    if len(notes):
        parts.append(f"<h3>Frames used with remarks ({len(notes)})</h3>")
        parts.append(_html_table(notes, ("stem", "object", "filter", "note")))
    parts.append("</body></html>")
    return "\n".join(parts)


def read_verdict(path: str | Path) -> tuple[bool, str]:
    """The verdict stored in ``night_status.ecsv`` (``(False, '')`` when there is none)."""
    path = Path(path)
    if not path.exists():
        return False, ""
    meta = Table.read(path).meta
    return bool(meta.get("fatal", False)), str(meta.get("verdict", ""))
