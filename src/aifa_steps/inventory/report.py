"""Summaries of the inventory: frame counts and a self-contained HTML page."""

from __future__ import annotations

from astropy.table import Table

from aifa_steps.inventory.classify import FRAME_TYPES

__all__ = ["inventory_summary", "inventory_html"]


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
