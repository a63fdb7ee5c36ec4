"""The night's status: what happened to every raw file, and the verdict of the night.

`night_status` joins the inventory, the astrometry status and the zero points into one row
per raw file (``night_status.ecsv``); `night_verdict` says whether anything was solved
(a night where nothing was, ends the run); `calibration_notes` and `zeropoint_notes` say
what the calibration could apply and why magnitudes stay instrumental. `summarise_night` is
the ``night_summary`` rule's step: the status table with all of these in its meta, and the
summary page (`aifa_steps.summary.page.night_summary_html`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy.table import Table

from aifa_steps.summary.checks import config_warnings, reason_counts, text_filled
from aifa_steps.summary.page import night_summary_html

__all__ = [
    "STATUS_COLUMNS",
    "calibration_notes",
    "night_status",
    "night_verdict",
    "read_verdict",
    "summarise_night",
    "zeropoint_notes",
]

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
            + reason_counts(
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


def read_verdict(path: str | Path) -> tuple[bool, str]:
    """The verdict stored in ``night_status.ecsv`` (``(False, '')`` when there is none)."""
    path = Path(path)
    if not path.exists():
        return False, ""
    meta = Table.read(path).meta
    return bool(meta.get("fatal", False)), str(meta.get("verdict", ""))


def summarise_night(
    inventory: Table,
    astrometry: Table,
    zeropoints: Table | None,
    flat_frames: Iterable[Table],
    catalogues: Mapping[str, Table],
    targets: Mapping | None,
) -> tuple[Table, str]:
    """The night's status table and summary page (the ``night_summary`` rule's step).

    Parameters
    ----------
    inventory : astropy.table.Table
        The inventory.
    astrometry : astropy.table.Table
        ``astrometry/status.ecsv``.
    zeropoints : astropy.table.Table or None
        ``zeropoints.ecsv`` (None when nothing was solved).
    flat_frames : iterable of Table
        ``qc/flat_frames_<filter>.ecsv`` tables.
    catalogues : mapping
        Target -> its reference catalogue extract.
    targets : mapping or None
        The ``targets`` section of the configuration.

    Returns
    -------
    status : astropy.table.Table
        `night_status`, with ``verdict``, ``fatal``, ``warnings`` (`config_warnings`) and
        ``photometry`` (`zeropoint_notes`) and ``calibration`` (`calibration_notes`) in its
        meta.
    page : str
        The HTML summary page.
    """
    flat_frames = list(flat_frames)
    status = night_status(inventory, astrometry, zeropoints, flat_frames)
    fatal, verdict = night_verdict(status)
    warnings = config_warnings({"targets": targets or {}}, inventory)
    photometry = zeropoint_notes(zeropoints, dict(catalogues))
    status.meta["verdict"] = verdict
    status.meta["fatal"] = fatal
    status.meta["warnings"] = warnings
    status.meta["photometry"] = photometry
    status.meta["calibration"] = calibration_notes(inventory, flat_frames)
    page = night_summary_html(status, verdict, warnings, status.meta["calibration"], photometry)
    return status, page
