"""A target's reference sources: detections, isolation, catalogue match, choice of the frame.

The reference table (``photometry/<target>/reference.ecsv``) holds the positions that every
frame of the target is measured at, which of them are isolated, their catalogue magnitudes and
(in its metadata) the target's apertures (`aifa_steps.photometry.aperture_plans`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.core.atomic import write_text
from aifa_steps.photometry.aperture_plans import set_reference_apertures
from aifa_steps.photometry.background import estimate_background
from aifa_steps.photometry.detection import detect_sources
from aifa_steps.photometry.settings import DetectionParameters, PhotometryParameters

__all__ = [
    "target_reference",
    "solved_seeing",
    "reference_frame_warning",
    "reference_summary",
    "reference_sources",
    "isolated_sources",
    "choose_reference_frame",
    "write_ds9_regions",
]


def reference_sources(
    data: np.ndarray,
    background: np.ndarray,
    background_rms: np.ndarray,
    wcs: WCS,
    refcat: Table | None,
    mask: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    params: DetectionParameters | None = None,
    isolation_arcsec: float = 12.0,
    match_radius_arcsec: float = 2.0,
    band: str = "r",
) -> Table:
    """A target's reference table: detections, isolation and catalogue cross-identification.

    Parameters
    ----------
    data, background, background_rms, wcs, mask, uncertainty, params
        As for `detect_sources`.
    refcat : astropy.table.Table or None
        Reference catalogue (RefCat2 columns) for the cross-identification.
    isolation_arcsec : float
        A source with a neighbour within this radius that adds more than 1 % of its flux is
        not ``isolated`` (such stars do not enter zero points and aperture corrections).
        Neighbours are the other detections and the catalogue's stars, which reveal pairs
        closer than the seeing that the detection merged.
    match_radius_arcsec : float
        Radius of the catalogue match.
    band : str
        Filter of the frame (catalogue magnitudes ``<band>mag`` rank the neighbours).

    Returns
    -------
    astropy.table.Table
        `detect_sources` columns plus ``isolated`` and the `aifa_steps.photometry.refcat.crossmatch`
        columns (``refcat_sep_arcsec``, ``refcat_row``, ``gmag``, ``e_gmag``, ...).
    """
    from aifa_steps.photometry.refcat import crossmatch

    table = detect_sources(data, background, background_rms, wcs, mask, params, uncertainty)
    empty = Table({"RA_ICRS": np.zeros(0), "DE_ICRS": np.zeros(0)})
    table = crossmatch(table, refcat if refcat is not None else empty, match_radius_arcsec)
    table["isolated"] = _isolation(table, refcat, band, isolation_arcsec)
    table.meta["ISOLRAD"] = (isolation_arcsec, "isolation radius [arcsec]")
    table.meta["MATCHRAD"] = (match_radius_arcsec, "catalogue match radius [arcsec]")
    return table


def isolated_sources(
    ra: np.ndarray, dec: np.ndarray, flux: np.ndarray, radius_arcsec: float, max_ratio: float = 0.01
) -> np.ndarray:
    """Sources without a neighbour that would add more than a small fraction of their flux.

    Parameters
    ----------
    ra, dec : numpy.ndarray
        Positions (deg) of all detected sources.
    flux : numpy.ndarray
        Their fluxes (any consistent unit).
    radius_arcsec : float
        Neighbours closer than this count (e.g. the largest aperture plus the seeing).
    max_ratio : float
        A neighbour brighter than this fraction of the source's flux spoils it.

    Returns
    -------
    numpy.ndarray
        True for isolated sources.
    """
    from astropy.coordinates import search_around_sky

    coords = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    flux = np.asarray(flux, dtype=float)
    i, j, _, _ = search_around_sky(coords, coords, radius_arcsec * u.arcsec)
    pair = i != j
    spoiled = np.zeros(len(coords), bool)
    spoiled[i[pair][flux[j[pair]] > max_ratio * flux[i[pair]]]] = True
    return ~spoiled


def _isolation(table: Table, refcat: Table | None, band: str, radius_arcsec: float) -> np.ndarray:
    """Isolation of detections against the other detections and the catalogue's stars."""
    column = f"{band}mag"
    flux = np.asarray(table["segment_flux"], float)
    if refcat is None or column not in refcat.colnames or len(refcat) == 0:
        return isolated_sources(table["ra"], table["dec"], flux, radius_arcsec)
    # Catalogue stars on the detections' flux scale (a rough zero point from the matches).
    cat_mag = np.asarray(table[column], float)
    matched = np.isfinite(cat_mag) & (flux > 0)
    if matched.sum() < 3:
        return isolated_sources(table["ra"], table["dec"], flux, radius_arcsec)
    zeropoint = np.median(cat_mag[matched] + 2.5 * np.log10(flux[matched]))
    used = np.zeros(len(refcat), bool)
    used[np.asarray(table["refcat_row"])[np.asarray(table["refcat_row"]) >= 0]] = True
    extra = refcat[~used & np.isfinite(np.asarray(refcat[column], float))]
    ra = np.concatenate([np.asarray(table["ra"], float), np.asarray(extra["RA_ICRS"], float)])
    dec = np.concatenate([np.asarray(table["dec"], float), np.asarray(extra["DE_ICRS"], float)])
    # A detection matched to the catalogue counts with the catalogue's flux, so that a merged
    # pair's fainter member (an unmatched catalogue star next to it) spoils it.
    own = np.where(matched, 10 ** (-0.4 * (cat_mag - zeropoint)), flux)
    others = 10 ** (-0.4 * (np.asarray(extra[column], float) - zeropoint))
    isolated = isolated_sources(ra, dec, np.concatenate([own, others]), radius_arcsec)
    return isolated[: len(table)]


def choose_reference_frame(frames: Table, preferred_filter: str | None = None) -> str:
    """The frame to detect on: the best seeing among the deepest frames.

    Parameters
    ----------
    frames : astropy.table.Table
        Candidate frames (solved frames of one target) with columns ``stem``, ``filter``,
        ``exptime`` and ``fwhm_arcsec`` (seeing measured by the astrometry).
    preferred_filter : str, optional
        Restrict to this filter when the target has frames in it (e.g. ``r``: stars of all
        colours are detected).

    Returns
    -------
    str
        The stem of the chosen frame.

    Raises
    ------
    ValueError
        If there is no candidate.
    """
    if len(frames) == 0:
        raise ValueError("no solved frame to choose a reference frame from")
    rows = frames
    if preferred_filter is not None and np.any(rows["filter"] == preferred_filter):
        rows = rows[rows["filter"] == preferred_filter]
    deepest = rows[np.asarray(rows["exptime"], float) >= 0.99 * np.max(rows["exptime"])]
    if "fwhm_arcsec" in deepest.colnames:
        seeing = np.asarray(deepest["fwhm_arcsec"], float)
    else:
        seeing = np.full(len(deepest), np.nan)
    seeing = np.where(np.isfinite(seeing), seeing, np.inf)
    return str(deepest["stem"][int(np.argmin(seeing))])


def write_ds9_regions(table: Table, path: str | Path, radius_arcsec: float = 4.0) -> None:
    """Write detections as a DS9 region file (fk5 circles labelled with their ``id``).

    Parameters
    ----------
    table : astropy.table.Table
        Table with ``id``, ``ra`` and ``dec`` (deg).
    path : path
        Output ``.reg`` file.
    radius_arcsec : float
        Circle radius (e.g. the smallest photometry aperture).
    """
    lines = [
        "# Region file format: DS9 version 4.1",
        'global color=green font="helvetica 9 normal" select=1 edit=0 move=0 delete=1',
        "fk5",
    ]
    for row in table:
        lines.append(
            f'circle({row["ra"]:.7f},{row["dec"]:.7f},{radius_arcsec:.2f}") # text={{{row["id"]}}}'
        )
    write_text(path, "\n".join(lines) + "\n")


def solved_seeing(status: Table, target: str) -> np.ndarray:
    """Seeing (arcsec) of a target's solved frames, from the astrometry status table."""
    mine = status[(status["target"] == target) & status["solved"]]
    return np.asarray(mine["fwhm_arcsec"], float)


def reference_frame_warning(requested: str, stem: str, target: str) -> str:
    """Why the configured reference frame is not used ('' when it is, or none is set)."""
    if requested and requested != stem:
        return (
            f"the configured reference frame {requested} of {target} is not a solved frame; "
            f"using {stem} instead"
        )
    return ""


def target_reference(
    ccd: CCDData,
    refcat: Table | None,
    stem: str,
    frame_fwhm_arcsec: np.ndarray,
    photometry: PhotometryParameters,
    detection: DetectionParameters,
    isolation_arcsec: float,
    match_radius_arcsec: float,
    name: str,
    target: str,
) -> tuple[Table, np.ndarray]:
    """A target's reference table from its reference frame, with its apertures.

    The background (`estimate_background` with the photometry's box and filter) is removed,
    sources are detected and matched (`reference_sources`, in the frame's filter), and the
    target's apertures are chosen from the seeing of its solved frames
    (`aifa_steps.photometry.aperture_plans.set_reference_apertures`).

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        The solved reference frame (``flags`` or ``mask``, uncertainty).
    refcat : astropy.table.Table or None
        The target's reference catalogue.
    stem : str
        The reference frame's name (``REFFRAME``).
    frame_fwhm_arcsec : numpy.ndarray
        Seeing of the target's solved frames (`solved_seeing`).
    photometry, detection : PhotometryParameters, DetectionParameters
        Settings.
    isolation_arcsec, match_radius_arcsec : float
        As for `reference_sources`.
    name, target : str
        The target's header name (``OBJECT``) and file-safe name (``TARGET``).

    Returns
    -------
    table : astropy.table.Table
        The reference sources; metadata: the detection settings (`DetectionParameters.as_header`),
        ``REFFRAME``, ``OBJECT``, ``TARGET`` and the apertures.
    residual : numpy.ndarray
        The frame minus its background (for the detections figure).
    """
    bad = ccd.flags > 0 if ccd.flags is not None else ccd.mask
    background, rms = estimate_background(
        ccd.data, bad, photometry.background_box, photometry.background_filter
    )
    table = reference_sources(
        ccd.data,
        background,
        rms,
        ccd.wcs,
        refcat,
        mask=bad,
        uncertainty=ccd.uncertainty.array,
        params=detection,
        isolation_arcsec=isolation_arcsec,
        match_radius_arcsec=match_radius_arcsec,
        band=str(ccd.meta.get("FILTNAME", ccd.meta.get("FILTER", "r"))),
    )
    table.meta.update(detection.as_header())
    table.meta["REFFRAME"] = (stem, "frame the sources were detected on")
    table.meta["OBJECT"] = name
    table.meta["TARGET"] = target
    set_reference_apertures(table, photometry, frame_fwhm_arcsec)
    return table, ccd.data - background


def reference_summary(table: Table, n_frames: int) -> list[str]:
    """Log lines of a reference table: its apertures and what was detected."""
    meta = table.meta
    target, stem = meta["TARGET"], meta["REFFRAME"]
    stem = stem[0] if isinstance(stem, (list, tuple)) else stem
    apertures = ", ".join(
        f'{k} = {r:.2f}"' for k, r in zip(meta["APKEYS"], meta["APERTURES"], strict=True)
    )
    return [
        f"apertures of {target}: {apertures} ({meta['APMODE']}; FWHM {meta['APFWHM']:.2f} "
        f"arcsec, median of {n_frames} frames)",
        f"{target}: {len(table)} sources on {stem}, {int(table['isolated'].sum())} isolated, "
        f"{int((table['refcat_row'] >= 0).sum())} in the reference catalogue",
    ]
