"""The summary page of the report: the verdict, counts per target, every frame left out."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable

from astropy.table import Table

__all__ = ["night_summary_html"]


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
        `aifa_steps.summary.status.night_status` of the night.
    verdict : str
        `aifa_steps.summary.status.night_verdict`'s message.
    warnings : iterable of str
        Configuration warnings (`aifa_steps.summary.checks.config_warnings`) and other notes.
    calibration : iterable of str
        What the calibration applied and what the night lacked.
    photometry : iterable of str
        Notes on the photometric calibration (`aifa_steps.summary.status.zeropoint_notes`).
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
