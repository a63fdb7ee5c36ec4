"""The night's results as HTML: ``summary.html`` in the work folder and the report's first page.

The same content serves both: in the work folder the figures are shown and linked by their
paths; in the report (`results_html` with ``in_report=True``) they are links that open the
report's own entries (Snakemake's ``app.showResultInfo``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from astropy.time import Time

__all__ = ["results_html"]

STYLE = (
    "<style>.aifa-summary{font-family:sans-serif;max-width:60em}"
    " .aifa-summary table{border-collapse:collapse;margin:0.5em 0 1em 0}"
    " .aifa-summary td,.aifa-summary th{border:1px solid #bbb;padding:2px 8px;text-align:left}"
    " .aifa-summary th{background:#eee} .aifa-summary .bad{color:#a40}"
    " .aifa-summary .verdict{font-size:1.1em;font-weight:bold}"
    " .aifa-summary img{max-width:100%;border:1px solid #ccc;margin:0.3em 0}"
    # In Snakemake's report the main page is centred vertically in a scrolling box, so a page
    # taller than the window loses its top (the verdict) out of reach: align it to the top,
    # and give the summary room next to the rule graph.
    " div.overflow-auto:has(.aifa-summary){align-items:flex-start}"
    " .prose:has(.aifa-summary){max-width:48rem}</style>"
)


#: A link in the report opens the entry itself (figure or page) and its description, as a
#: click on it in the report's list of results does (Snakemake's ``app`` and ``results``).
SHOW_ENTRY = (
    "(function(p){app.showResultInfo(p);var r=results[p];if(r){app.setView({content:"
    "r.mime_type.indexOf('image/')===0?'img':'html',contentPath:r.data_uri,resultPath:p});}})"
)


def _fmt(value: object, digits: int = 2, scale: float = 1.0) -> str:
    if value is None:
        return "-"
    return f"{float(value) * scale:.{digits}f}"


def _pm(value: object, error: object, digits: int = 2, scale: float = 1.0) -> str:
    if value is None:
        return "-"
    text = _fmt(value, digits, scale)
    return f"{text} &plusmn; {_fmt(error, digits, scale)}" if error is not None else text


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _utc(mjd: object) -> str:
    return Time(float(mjd), format="mjd").utc.strftime("%Y-%m-%d %H:%M") if mjd else "-"


def _transit_rows(result: Mapping[str, object]) -> list[tuple[str, str]]:
    o_c = result.get("o_minus_c_minutes")
    rows = [
        ("transit depth", f"{_pm(result['depth'], result['depth_err'], 2, 100)} %"),
        (
            "mid-transit time (BJD_TDB)",
            f"{_fmt(result['t0_bjd_tdb'], 5)} &plusmn; {_fmt(result['t0_err_minutes'], 1)} min",
        ),
        (
            "against the predicted time",
            f"{_fmt(o_c, 1)} min (predicted {_fmt(result.get('predicted_t0_bjd_tdb'), 5)})"
            if o_c is not None
            else "no ephemeris",
        ),
        ("duration", f"{_pm(result['duration_hours'], result['duration_hours_err'])} h"),
        (
            "scatter (residuals)",
            f"{_fmt(result['rms_per_frame_ppt'])} ppt per frame, "
            f"{_fmt(result['rms_per_bin_ppt'])} ppt per {result['bin_minutes']:g} min",
        ),
        ("frames in the fit", str(result["n_points"])),
        ("aperture", f"{_fmt(result.get('aperture_arcsec'), 1)} arcsec"),
    ]
    return rows


def _cluster_rows(result: Mapping[str, object]) -> list[tuple[str, str]]:
    stars = result.get("stars", {})
    return [
        ("stars measured", ", ".join(f"{b}: {n}" for b, n in stars.items()) or "-"),
        ("stars in the CMD (g, r and i)", _cmd_stars_text(result)),
    ]


def _cmd_stars_text(result: Mapping[str, object]) -> str:
    """How many stars the CMD has and which of them to trust less."""
    text = (
        f"{result.get('cmd_stars', 0)}: {result.get('poorly_measured', 0)} with an error of "
        "0.1 mag or more (crosses in the diagram), "
    )
    if result.get("method") == "psf":
        return text + (
            f"{result.get('poor_fits', 0)} with a poor PSF fit (open circles); PSF magnitudes: "
            f"the {result.get('blended', 0)} stars with a bright neighbour were fitted "
            "together with it"
        )
    return text + (
        f"{result.get('blended', 0)} blended (a neighbour adds light to the aperture: open circles)"
    )


def _zeropoint_rows(zeropoints: Mapping[str, Mapping[str, object]]) -> list[tuple[str, str]]:
    return [
        (
            f"zero point {band}",
            f"{_fmt(zp['median'], 3)} mag (scatter {_fmt(zp.get('scatter'), 3)} over "
            f"{zp['frames']} frames, aperture {html.escape(str(zp['aperture']))})",
        )
        for band, zp in zeropoints.items()
    ]


def _link(label: str, path: str, in_report: bool, show: bool) -> str:
    if in_report:
        href = f"javascript:{SHOW_ENTRY}('{quote(path)}')"
        return f'<li><a href="{html.escape(href)}">{html.escape(label)}</a></li>'
    image = f"<br><img src='{html.escape(path)}' alt='{html.escape(label)}'>" if show else ""
    return f"<li><a href='{html.escape(path)}'>{html.escape(label)}</a>{image}</li>"


def results_html(
    results: Mapping[str, object],
    figures: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    in_report: bool = False,
) -> str:
    """The summary as HTML.

    Parameters
    ----------
    results : mapping
        `aifa_steps.summary.results.night_results`.
    figures : mapping, optional
        Per target (and ``"night"``), ``(label, path)`` of its figures: paths relative to the
        work folder for ``summary.html``, Snakemake's paths of the report's entries otherwise.
    in_report : bool
        A fragment for the report (links to its entries, no images) instead of a page.
    """
    figures = figures or {}
    frames = results["frames"]
    parts = [STYLE, "<div class='aifa-summary'>"]
    if not in_report:
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Night summary</title>",
            STYLE,
            "</head><body><div class='aifa-summary'><h1>Night summary</h1>",
        ]
    verdict_class = "verdict bad" if results.get("fatal") else "verdict"
    parts.append(f"<p class='{verdict_class}'>{html.escape(str(results['verdict']))}</p>")
    for name, result in results["targets"].items():
        kind = str(result.get("kind", ""))
        parts.append(f"<h2>{html.escape(name)} ({html.escape(kind)})</h2>")
        rows: list[tuple[str, str]] = []
        if kind == "transit" and "depth" in result:
            rows = _transit_rows(result)
        elif kind == "cluster" and "stars" in result:
            rows = _cluster_rows(result)
        rows += _zeropoint_rows(result.get("zeropoints", {}))
        if result.get("note"):
            rows.append(("note", f"<span class='bad'>{html.escape(str(result['note']))}</span>"))
        parts.append(_rows(rows) if rows else "<p>No products for this target.</p>")
        links = [_link(label, path, in_report, True) for label, path in figures.get(name, ())]
        if links:
            parts.append("<ul>" + "".join(links) + "</ul>")
    parts.append("<h2>Frames</h2>")
    lost = ", ".join(f"{n} at {html.escape(step)}" for step, n in frames["by_step"].items())
    parts.append(
        f"<p>{frames['used']} of {frames['lights']} light frames reduced"
        + (f"; left out: {lost}" if lost else "")
        + ".</p>"
    )
    if frames["reasons"]:
        body = "".join(
            f"<tr><td>{html.escape(r['step'])}</td><td>{r['frames']}</td>"
            f"<td>{html.escape(r['reason'])}</td></tr>"
            for r in frames["reasons"]
        )
        parts.append(
            "<table><thead><tr><th>step</th><th>frames</th><th>reason</th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    if results.get("calibration"):
        parts.append("<h2>Calibration applied</h2><ul>")
        parts += [f"<li>{html.escape(c)}</li>" for c in results["calibration"]]
        parts.append("</ul>")
    conditions = results.get("conditions", {})
    seeing = conditions.get("seeing_arcsec", {})
    rows = [
        (
            "observed (UTC)",
            f"{_utc(conditions.get('first_mjd'))} to {_utc(conditions.get('last_mjd'))}",
        ),
        (
            "seeing (FWHM)",
            f'median {_fmt(seeing.get("median"))}", from {_fmt(seeing.get("min"))}" '
            f'to {_fmt(seeing.get("max"))}"',
        ),
    ]
    for band, sky in conditions.get("sky_adu_per_s", {}).items():
        rows.append(
            (
                f"sky in {band}",
                f"median {_fmt(sky['median'], 1)} ADU/s per pixel, from {_fmt(sky['min'], 1)} "
                f"to {_fmt(sky['max'], 1)}",
            )
        )
    airmass = conditions.get("airmass")
    if airmass:
        rows.append(("airmass", f"{_fmt(airmass['min'])} to {_fmt(airmass['max'])}"))
    parts.append("<h2>Conditions</h2>" + _rows(rows))
    links = [_link(label, path, in_report, False) for label, path in figures.get("night", ())]
    if links:
        parts.append("<ul>" + "".join(links) + "</ul>")
    parts.append("</div>")
    if not in_report:
        parts.append("</body></html>")
    return "\n".join(parts)
