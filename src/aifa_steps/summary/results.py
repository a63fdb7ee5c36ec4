"""The night's results in one place: the numbers a student looks for first.

`night_results` gathers, per target, the headline numbers with their errors (a transit's depth,
mid-time against the predicted one, duration and scatter; a cluster's stars and zero points),
the night's frame counts with the reasons frames were left out, the calibrations applied and
the observing conditions (seeing, sky, airmass). It is written as ``summary.json`` and drawn
as ``summary.html`` (`aifa_steps.summary.results_page`), which also opens the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
from astropy.table import Table

from aifa_steps.core.formats import safe_name
from aifa_steps.products.lightcurve import bin_light_curve, bin_width_minutes

__all__ = [
    "cluster_result",
    "frame_counts",
    "night_conditions",
    "night_results",
    "transit_result",
]


def _number(value: object) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _range(values: Iterable[float]) -> dict[str, float | None]:
    values = np.asarray([v for v in values if _number(v) is not None], float)
    if not values.size:
        return {"median": None, "min": None, "max": None}
    return {
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def transit_result(fit: Mapping[str, object], lightcurve: Table, bin_minutes: float = 10.0) -> dict:
    """Headline numbers of a transit: depth, mid-time (and against the prediction), duration.

    Parameters
    ----------
    fit : mapping
        ``products/<object>/transit_fit.json``.
    lightcurve : astropy.table.Table
        ``products/<object>/lightcurve.ecsv`` (``flux_detrended`` and ``transit``).
    bin_minutes : float
        Shortest bin of the binned scatter (`bin_width_minutes`).

    Returns
    -------
    dict
        ``depth``, ``depth_err`` (fractions), ``t0_bjd_tdb``, ``t0_err_minutes``,
        ``predicted_t0_bjd_tdb`` and ``o_minus_c_minutes`` (None without an ephemeris),
        ``duration_hours`` and its error, ``rms_per_frame_ppt``, ``rms_per_bin_ppt`` with
        ``bin_minutes``, ``n_points``, ``aperture_arcsec``, ``error_scale``.
    """
    t = np.asarray(lightcurve["bjd_tdb"], float)
    residual = np.asarray(lightcurve["flux_detrended"], float) - np.asarray(
        lightcurve["transit"], float
    )
    width = bin_width_minutes(t, bin_minutes)
    _, binned, _ = bin_light_curve(t, residual, width) if len(t) > 1 else (None, [], None)
    t0 = _number(fit.get("t0_bjd_tdb"))
    predicted = _number(fit.get("predicted_t0_bjd_tdb"))
    return {
        "kind": "transit",
        "depth": _number(fit.get("depth")),
        "depth_err": _number(fit.get("depth_err")),
        "t0_bjd_tdb": t0,
        "t0_err_minutes": _number(float(fit.get("t0_bjd_tdb_err", np.nan)) * 1440.0),
        "predicted_t0_bjd_tdb": predicted,
        "o_minus_c_minutes": (
            (t0 - predicted) * 1440.0 if t0 is not None and predicted is not None else None
        ),
        "duration_hours": _number(fit.get("duration_hours")),
        "duration_hours_err": _number(fit.get("duration_hours_err")),
        "rms_per_frame_ppt": _number(np.nanstd(residual) * 1e3) if len(t) else None,
        "rms_per_bin_ppt": _number(np.nanstd(binned) * 1e3) if len(binned) > 1 else None,
        "bin_minutes": width,
        "n_points": int(np.isfinite(residual).sum()),
        "aperture_arcsec": _number(fit.get("aperture_arcsec")),
        "error_scale": _number(fit.get("error_scale")),
    }


def cluster_result(
    catalogue: Table, zeropoints: Table | None, target: str, max_error: float = 0.1
) -> dict:
    """Headline numbers of a cluster: stars measured per band, in the CMD, zero points.

    Parameters
    ----------
    catalogue : astropy.table.Table
        ``products/<object>/catalogue.ecsv`` (``g``, ``r``, ``i``, their errors, ``blended``).
    zeropoints : astropy.table.Table or None
        The night's ``zeropoints.ecsv``.
    target : str
        The target's name in the zero-point table (``target`` column).
    max_error : float
        Largest error of a well-measured magnitude (as `aifa_steps.products.plots.cmd_figure`).

    Returns
    -------
    dict
        ``stars`` (per band with a magnitude), ``cmd_stars`` (g, r and i measured: the
        diagram's r against g - i), of those ``poorly_measured`` (an error of ``max_error`` or
        more), ``blended`` (well measured, with a bright neighbour) and ``poor_fits`` (well
        measured, PSF fit poor), ``method`` (``psf`` or ``aperture``: the catalogue's
        ``METHOD``), ``zeropoints`` (per filter: ``median``, ``scatter``, ``frames``,
        ``aperture``).
    """
    bands = [b for b in ("g", "r", "i") if b in catalogue.colnames]
    measured = {b: np.isfinite(np.asarray(catalogue[b], float)) for b in bands}
    in_cmd = np.ones(len(catalogue), bool) if len(bands) == 3 else np.zeros(len(catalogue), bool)
    for band in bands:
        in_cmd &= measured[band]
    poor = np.zeros(len(catalogue), bool)
    for band in bands:
        if f"{band}_err" in catalogue.colnames:
            poor |= ~(np.asarray(catalogue[f"{band}_err"], float) < max_error)
    isolated = (
        ~np.asarray(catalogue["blended"], bool)
        if "blended" in catalogue.colnames
        else np.ones(len(catalogue), bool)
    )
    method = catalogue.meta.get("METHOD", "aperture")
    poor_fit = (
        np.asarray(catalogue["poor_fit"], bool)
        if "poor_fit" in catalogue.colnames
        else np.zeros(len(catalogue), bool)
    )
    return {
        "kind": "cluster",
        "method": str(method[0] if isinstance(method, (list, tuple)) else method),
        "stars": {b: int(m.sum()) for b, m in measured.items()},
        "cmd_stars": int(in_cmd.sum()),
        "blended": int((in_cmd & ~poor & ~isolated).sum()),
        "poor_fits": int((in_cmd & ~poor & poor_fit).sum()),
        "poorly_measured": int((in_cmd & poor).sum()),
        "zeropoints": _zeropoints_of(zeropoints, target),
    }


def _zeropoints_of(zeropoints: Table | None, target: str) -> dict:
    """Per filter: median zero point over the frames at the smallest aperture, its scatter."""
    if zeropoints is None or not len(zeropoints) or "target" not in zeropoints.colnames:
        return {}
    rows = zeropoints[np.asarray(zeropoints["target"]).astype(str) == target]
    out = {}
    for band in sorted(set(np.asarray(rows["filter"]).astype(str))):
        sel = rows[np.asarray(rows["filter"]).astype(str) == band]
        good = sel[np.isfinite(np.asarray(sel["zeropoint"], float))]
        if not len(good):
            continue
        smallest = good["aperture"][int(np.argmin(good["aperture_arcsec"]))]
        values = np.asarray(good["zeropoint"][good["aperture"] == smallest], float)
        out[band] = {
            "median": float(np.median(values)),
            "scatter": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "frames": len(values),
            "aperture": str(smallest),
        }
    return out


def frame_counts(status: Table) -> dict:
    """Light frames used, excluded and failed, and why, from ``night_status.ecsv``.

    Returns
    -------
    dict
        ``lights``, ``used``, ``excluded``, ``failed``; ``by_step`` (frames lost at each step)
        and ``reasons`` (``step``, ``reason``, ``frames``, most frequent first).
    """
    lights = status[np.asarray(status["imagetyp"]).astype(str) == "light"]
    kinds = Counter(str(s) for s in lights["status"])
    lost = lights[np.asarray(lights["status"]).astype(str) != "used"]
    steps = Counter(str(s) or "inventory" for s in lost["step"])
    reasons = Counter(
        (str(row["step"]) or "inventory", str(row["reason"]) or "no reason given") for row in lost
    )
    return {
        "lights": len(lights),
        "used": kinds["used"],
        "excluded": kinds["excluded"],
        "failed": kinds["failed"],
        "by_step": dict(steps),
        "reasons": [
            {"step": step, "reason": reason, "frames": n}
            for (step, reason), n in reasons.most_common()
        ],
    }


def night_conditions(calibrated: Table | None, zeropoints: Table | None) -> dict:
    """Seeing, sky brightness and airmass through the night.

    Parameters
    ----------
    calibrated : astropy.table.Table or None
        ``qc/calibrated_frames.ecsv`` (``sky_median`` in ADU, ``exptime``, ``airmass``,
        ``mjd``, ``filter``).
    zeropoints : astropy.table.Table or None
        ``zeropoints.ecsv`` (``seeing_arcsec`` per frame).

    Returns
    -------
    dict
        ``seeing_arcsec`` (median, min, max over the measured frames), ``sky_adu_per_s`` per
        filter, ``airmass``, ``first_mjd`` and ``last_mjd``.
    """
    out: dict[str, object] = {"seeing_arcsec": _range([]), "sky_adu_per_s": {}}
    if zeropoints is not None and "seeing_arcsec" in zeropoints.colnames and len(zeropoints):
        per_frame = {str(r["stem"]): r["seeing_arcsec"] for r in zeropoints}
        out["seeing_arcsec"] = _range(per_frame.values())
    if calibrated is not None and len(calibrated):
        rate = np.asarray(calibrated["sky_median"], float) / np.asarray(
            calibrated["exptime"], float
        )
        bands = np.asarray(calibrated["filter"]).astype(str)
        out["sky_adu_per_s"] = {b: _range(rate[bands == b]) for b in sorted(set(bands))}
        out["airmass"] = _range(calibrated["airmass"])
        mjd = np.asarray(calibrated["mjd"], float)
        out["first_mjd"], out["last_mjd"] = _number(np.nanmin(mjd)), _number(np.nanmax(mjd))
    return out


def night_results(
    status: Table,
    targets: Mapping[str, Mapping[str, object]],
    transits: Mapping[str, tuple[Mapping[str, object], Table]] | None = None,
    clusters: Mapping[str, Table] | None = None,
    zeropoints: Table | None = None,
    calibrated: Table | None = None,
    calibration: Iterable[str] = (),
) -> dict:
    """Everything the summary shows, JSON-ready (``summary.json``).

    Parameters
    ----------
    status : astropy.table.Table
        ``night_status.ecsv`` with its verdict in the meta.
    targets : mapping
        The configuration's targets (their ``kind``).
    transits : mapping, optional
        Transit target (its name or its folder's file-safe name) -> (its
        ``transit_fit.json``, its light curve).
    clusters : mapping, optional
        Cluster (name or folder name) -> its catalogue.
    zeropoints, calibrated : astropy.table.Table, optional
        ``zeropoints.ecsv`` and ``qc/calibrated_frames.ecsv``.
    calibration : iterable of str
        What the calibration applied (`aifa_steps.summary.status.calibration_notes`).

    Returns
    -------
    dict
        ``verdict``, ``fatal``, ``frames`` (`frame_counts`), ``targets`` (per target its
        `transit_result` or `cluster_result`, or ``kind`` and ``note`` when it has no
        product), ``calibration``, ``conditions`` (`night_conditions`).
    """
    transits, clusters = transits or {}, clusters or {}
    results: dict[str, dict] = {}
    in_zeropoints = (
        set(np.asarray(zeropoints["target"]).astype(str))
        if zeropoints is not None and "target" in zeropoints.colnames
        else None
    )
    for name, settings in targets.items():
        kind = str(settings.get("kind", "field"))
        folder = name if name in transits or name in clusters else safe_name(name)
        in_table = name
        if in_zeropoints is not None and name not in in_zeropoints:
            in_table = safe_name(name)
        if folder in transits:
            results[name] = transit_result(*transits[folder])
        elif folder in clusters:
            results[name] = cluster_result(clusters[folder], zeropoints, in_table)
        else:
            note = "no solved frame: no products" if kind in ("transit", "cluster") else ""
            results[name] = {"kind": kind, "note": note}
        if "zeropoints" not in results[name]:  # a cluster's result has them already
            zp = _zeropoints_of(zeropoints, in_table)
            if zp:
                results[name]["zeropoints"] = zp
    return {
        "verdict": str(status.meta.get("verdict", "")),
        "fatal": bool(status.meta.get("fatal", False)),
        "frames": frame_counts(status),
        "targets": results,
        "calibration": list(calibration),
        "conditions": night_conditions(calibrated, zeropoints),
    }
