"""The summary step on files: read the night's products, write ``summary.json`` and the pages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from astropy.table import Table

from aifa_steps.core.atomic import write_json, write_text
from aifa_steps.core.formats import safe_name
from aifa_steps.summary.results import night_results
from aifa_steps.summary.results_page import results_html

__all__ = ["FIGURE_LABELS", "figure_links", "write_results_summary"]

#: Figures the summary links, by file name, with their labels.
FIGURE_LABELS = {
    "lightcurve.png": "light curve and transit fit",
    "cmd.png": "colour-magnitude diagram",
    "color.png": "colour image",
    "conditions.png": "seeing, sky and airmass through the night",
    "zeropoints.png": "zero points, seeing and aperture corrections",
    "astrometry.png": "astrometric quality through the night",
    "calibrated_frames.png": "calibrated frames through the night",
    "night_summary.html": "every frame left out, with its reason",
}


def figure_links(
    paths: Sequence[str | Path],
    work_dir: str | Path,
    relative: bool,
    targets: Sequence[str] = (),
) -> dict[str, list[tuple[str, str]]]:
    """``(label, path)`` of each known figure, per target (``products/<target>/``) or ``night``.

    Parameters
    ----------
    paths : sequence of path
        Files of the night (those not in `FIGURE_LABELS` are skipped).
    work_dir : path
        The work folder.
    relative : bool
        Paths relative to the work folder (``summary.html``) instead of as given (the report).
    targets : sequence of str
        The configuration's target names (a product folder has the file-safe form).
    """
    folders = {safe_name(name): name for name in targets}
    folders.update({name: name for name in targets})
    work = Path(work_dir).resolve()
    links: dict[str, list[tuple[str, str]]] = {}
    for path in paths:
        path = Path(path)
        label = FIGURE_LABELS.get(path.name)
        if label is None:
            continue
        owner = path.parent.name if path.parent.parent.name == "products" else "night"
        owner = folders.get(owner, owner)
        shown = path.resolve().relative_to(work).as_posix() if relative else str(path)
        links.setdefault(owner, []).append((label, shown))
    return links


def write_results_summary(
    status: str | Path,
    targets: Mapping[str, Mapping[str, object]],
    products: Sequence[str | Path],
    work_dir: str | Path,
    outputs: Mapping[str, str | Path],
    zeropoints: str | Path | None = None,
    calibrated: str | Path | None = None,
) -> dict:
    """Read the night's products and write ``summary.json``, ``summary.html`` and the report's page.

    Parameters
    ----------
    status : path
        ``night_status.ecsv`` (its meta: the verdict and the calibration applied).
    targets : mapping
        The configuration's targets.
    products : sequence of path
        The night's products and figures: ``transit_fit.json`` with ``lightcurve.ecsv``,
        ``catalogue.ecsv``, and the figures to link (`FIGURE_LABELS`).
    work_dir : path
        The work folder (links in ``summary.html`` are relative to it).
    outputs : mapping
        ``json``, ``html`` and ``fragment`` (the page embedded in the report) paths.
    zeropoints, calibrated : path, optional
        ``zeropoints.ecsv`` and ``qc/calibrated_frames.ecsv``.

    Returns
    -------
    dict
        The summary (as in ``summary.json``).
    """
    by_name: dict[str, dict[str, Path]] = {}
    for path in map(Path, products):
        by_name.setdefault(path.parent.name, {})[path.name] = path
    transits, clusters = {}, {}
    for name, files in by_name.items():
        if "transit_fit.json" in files and "lightcurve.ecsv" in files:
            fit = json.loads(files["transit_fit.json"].read_text())
            transits[name] = (fit, Table.read(files["lightcurve.ecsv"]))
        if "catalogue.ecsv" in files:
            clusters[name] = Table.read(files["catalogue.ecsv"])
    status = Table.read(status)
    summary = night_results(
        status,
        targets,
        transits,
        clusters,
        Table.read(zeropoints) if zeropoints else None,
        Table.read(calibrated) if calibrated else None,
        status.meta.get("calibration", ()),
    )
    write_json(outputs["json"], summary)
    names = list(targets)
    page = results_html(summary, figure_links(products, work_dir, True, names))
    write_text(outputs["html"], page)
    write_text(
        outputs["fragment"],
        results_html(summary, figure_links(products, work_dir, False, names), in_report=True),
    )
    return summary
