"""What a frame's WCS is refined against: the reference catalogue, or a solved frame's stars.

On a night without a reference catalogue, one solved frame of each target is measured through
its WCS (`target_stars`, `detection_catalogue`), and every frame of the target is refined
against those stars (`refine_with_fallback`), so all of them share one astrometric reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from aifa_steps.astrometry.chain import ChainResult
from aifa_steps.astrometry.refine import refine_wcs

__all__ = [
    "corr_catalogue",
    "refine_against_stars",
    "detection_catalogue",
    "refine_with_fallback",
    "target_stars",
    "own_reference",
]

log = logging.getLogger(__name__)


def corr_catalogue(corr: Table) -> Table:
    """solve-field's matched index stars (``.corr``) as a reference catalogue.

    Columns ``RA_ICRS``, ``DE_ICRS`` and ``mag`` (instrumental, from the measured flux).
    """
    flux = np.asarray(corr["FLUX"], float) if "FLUX" in corr.colnames else np.ones(len(corr))
    return Table(
        {
            "RA_ICRS": np.asarray(corr["index_ra"], float),
            "DE_ICRS": np.asarray(corr["index_dec"], float),
            "mag": 25.0 - 2.5 * np.log10(np.clip(flux, 1e-3, None)),
        }
    )


def refine_against_stars(
    data: np.ndarray,
    wcs: WCS,
    stars: Table,
    mask: np.ndarray | None = None,
    sip_degree: int = 3,
) -> tuple[WCS, Table]:
    """`aifa_steps.astrometry.refine.refine_wcs` against stars of instrumental ``mag``.

    Every star is used, whatever its magnitude (measured stars: a solved frame's sources or
    ``solve-field``'s index stars).
    """
    return refine_wcs(
        data,
        wcs,
        stars,
        mask=mask,
        mag_column="mag",
        mag_range=(-np.inf, np.inf),
        sip_degree=sip_degree,
    )


def detection_catalogue(
    data: np.ndarray,
    wcs: WCS,
    sources: Table,
    mask: np.ndarray | None = None,
    sip_degree: int = 3,
) -> Table:
    """A reference catalogue from one solved frame: windowed centroids of its sources on the sky.

    For a night without a reference catalogue: every frame of the target is then refined
    against the same stars, so their WCS agree with each other to the centroids' precision (and
    with the sky to the solved frame's precision).

    Parameters
    ----------
    data : numpy.ndarray
        The solved frame's calibrated image.
    wcs : astropy.wcs.WCS
        Its WCS.
    sources : astropy.table.Table
        Its source list (`aifa_steps.astrometry.solve.read_sources`).
    mask : numpy.ndarray, optional
        Pixels not to use.
    sip_degree : int
        Highest SIP order of the consistency fit.

    Returns
    -------
    astropy.table.Table
        ``RA_ICRS``, ``DE_ICRS``, ``mag`` (instrumental) of the isolated, unmasked sources
        that could be centroided.

    Raises
    ------
    ValueError
        When too few sources can be centroided.
    """
    ra, dec = wcs.all_pix2world(np.asarray(sources["x"]), np.asarray(sources["y"]), 0)
    rough = Table(
        {"RA_ICRS": ra, "DE_ICRS": dec, "mag": 25.0 - 2.5 * np.log10(np.asarray(sources["flux"]))}
    )
    # refine_wcs measures windowed centroids of every isolated source; their positions through
    # the frame's own WCS are the catalogue.
    _, matched = refine_against_stars(data, wcs, rough, mask, sip_degree)
    ra, dec = wcs.all_pix2world(np.asarray(matched["x"]), np.asarray(matched["y"]), 0)
    # Each centroided star's magnitude: the rough source it was measured for.
    cosd = np.cos(np.radians(np.median(dec)))
    tree = cKDTree(np.column_stack([rough["RA_ICRS"] * cosd, rough["DE_ICRS"]]))
    _, nearest = tree.query(np.column_stack([np.asarray(matched["ra"]) * cosd, matched["dec"]]))
    mags = np.asarray(rough["mag"], float)[nearest]
    return Table({"RA_ICRS": ra, "DE_ICRS": dec, "mag": mags})


def refine_with_fallback(
    data: np.ndarray,
    wcs: WCS,
    refcat: Table | None,
    stars: Table | None,
    mask: np.ndarray | None = None,
    mag_column: str = "rmag",
    sip_degree: int = 3,
) -> tuple[WCS, Table, str]:
    """Refine a frame's WCS against the reference catalogue, or else a solved frame's stars.

    Parameters
    ----------
    data : numpy.ndarray
        The calibrated image.
    wcs : astropy.wcs.WCS
        Starting WCS (``solve-field``'s or handed on by `propagate_wcs`).
    refcat : astropy.table.Table or None
        The reference catalogue (``RA_ICRS``, ``DE_ICRS``, ``mag_column``); empty or None on a
        night without one.
    stars : astropy.table.Table or None
        `detection_catalogue` of the target (``mag`` instrumental); meta ``FRAME`` names the
        frame they were measured on.
    mask : numpy.ndarray, optional
        Pixels not to use.
    mag_column : str
        Magnitude of the reference catalogue that selects stars.
    sip_degree : int
        Highest SIP order.

    Returns
    -------
    wcs : astropy.wcs.WCS
        The refined WCS.
    matched : astropy.table.Table
        The stars of the fit (see `aifa_steps.astrometry.refine.refine_wcs`).
    reference : str
        ``refcat`` or ``stars of <stem>``: what the frame was refined against.

    Raises
    ------
    ValueError
        When neither reference gives a fit (the message says why for each).
    """
    problems = []
    if refcat is not None and len(refcat):
        try:
            refined, matched = refine_wcs(
                data, wcs, refcat, mask=mask, mag_column=mag_column, sip_degree=sip_degree
            )
            return refined, matched, "refcat"
        except ValueError as exc:
            problems.append(f"reference catalogue: {exc}")
    else:
        problems.append("the reference catalogue is empty")
    if stars is not None and len(stars):
        label = f"stars of {stars.meta.get('FRAME', 'a solved frame')}"
        try:
            refined, matched = refine_against_stars(data, wcs, stars, mask, sip_degree)
            return refined, matched, label
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
    else:
        reason = stars.meta.get("REASON", "") if stars is not None else ""
        problems.append("no solved frame's stars" + (f" ({reason})" if reason else ""))
    raise ValueError("; ".join(problems))


def target_stars(
    results: list[ChainResult],
    corrs: dict[str, Table],
    sources: dict[str, Table],
    read_frame: Callable[[str], tuple[np.ndarray, np.ndarray | None]],
    sip_degree: int = 3,
) -> Table:
    """The stars of one solved frame of a target on the sky.

    They are the reference of the target's frames on a night without a reference catalogue.

    The frame is the ``solve-field`` frame with the most matched index stars; its WCS is first
    refined against those index stars (windowed centroids), then its sources are measured
    through it (`detection_catalogue`).

    Parameters
    ----------
    results : list of ChainResult
        `propagate_wcs`'s results of the target.
    corrs : dict
        ``solve-field``'s matched stars (``.corr``) of the solved frames.
    sources : dict
        Source lists (`aifa_steps.astrometry.solve.read_sources`).
    read_frame : callable
        ``stem -> (data, mask)`` of a calibrated frame.
    sip_degree : int
        Highest SIP order.

    Returns
    -------
    astropy.table.Table
        ``RA_ICRS``, ``DE_ICRS``, ``mag``; meta ``FRAME`` (the frame) or ``REASON`` (why the
        table is empty).
    """
    stars = Table(names=("RA_ICRS", "DE_ICRS", "mag"), dtype=(float, float, float))
    anchors = [r for r in results if r.method == "solve-field" and r.stem in corrs]
    header_anchors = [r for r in results if r.method == "header"]
    if not anchors and not header_anchors:
        stars.meta["REASON"] = "no frame of this target was solved by solve-field"
        return stars
    anchor = max(anchors, key=lambda r: len(corrs[r.stem])) if anchors else header_anchors[0]
    data, mask = read_frame(anchor.stem)
    wcs = anchor.wcs
    if not anchors:
        log.info("%s: its header WCS measures the stars (no solve-field solution)", anchor.stem)
    try:
        if not anchors:
            raise ValueError("no index stars to refine a header WCS against")
        wcs, matched = refine_against_stars(
            data, wcs, corr_catalogue(corrs[anchor.stem]), mask, sip_degree
        )
        log.info("%s: WCS refined against %d index stars", anchor.stem, len(matched))
    except ValueError as exc:
        log.info("%s: solve-field's WCS as it is (%s)", anchor.stem, exc)
    try:
        stars = detection_catalogue(data, wcs, sources[anchor.stem], mask, sip_degree)
    except ValueError as exc:
        stars.meta["REASON"] = f"the stars of {anchor.stem} could not be measured: {exc}"
        return stars
    stars.meta["FRAME"] = anchor.stem
    log.info("%d stars of %s", len(stars), anchor.stem)
    return stars


def own_reference(stars: Table, stem: str, corr: Table | None) -> Table:
    """The stars a frame is refined against on a night without a reference catalogue.

    The target's stars (`target_stars`), except for the frame they were measured on: that
    frame would only fit its own centroids, so it is refined against the index stars that
    ``solve-field`` matched (its ``.corr``), as its stars' WCS was.
    """
    if stars.meta.get("FRAME") != stem or corr is None or len(corr) == 0:
        return stars
    own = corr_catalogue(corr)
    own.meta["FRAME"] = f"{stem} (solve-field's index stars)"
    return own
