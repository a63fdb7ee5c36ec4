"""One frame's astrometry (rule ``astrometry_frame``): refine, judge and attach its solution.

The starting WCS is ``solve-field``'s or one handed on from a solved frame of the same target
(`aifa_steps.astrometry.chain`); it is refined against the reference catalogue or a solved
frame's stars (`aifa_steps.astrometry.reference`), judged (`aifa_steps.astrometry.judge`) and
written into the calibrated frame's header with the astrometry's QC keywords.
"""

from __future__ import annotations

from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.astrometry.chain import chain_failure, chain_start
from aifa_steps.astrometry.judge import SolveStatus, judge_solution
from aifa_steps.astrometry.reference import own_reference, refine_with_fallback
from aifa_steps.astrometry.settings import FrameSettings
from aifa_steps.astrometry.solve import matches_from_corr
from aifa_steps.core.fitsutil import set_card
from aifa_steps.core.frames import with_wcs

__all__ = [
    "MATCH_COLUMNS",
    "empty_matches",
    "reference_magnitude",
    "attach_wcs",
    "solve_frame",
    "failed_status",
    "status_table",
]

#: Columns of a frame's matched reference stars (``astrometry/matches/<stem>.ecsv``).
MATCH_COLUMNS = ("x", "y", "ra", "dec", "dx", "dy", "residual_arcsec")


def empty_matches() -> Table:
    """A matched-star table without rows (a frame without a solution)."""
    return Table(names=MATCH_COLUMNS)


def reference_magnitude(refcat: Table | None, band: str, default: str) -> str:
    """The catalogue magnitude that selects reference stars: ``<band>mag``, else ``default``."""
    if refcat is not None and f"{band}mag" in refcat.colnames:
        return f"{band}mag"
    return default


def attach_wcs(ccd: CCDData, wcs: WCS, status: SolveStatus) -> CCDData:
    """The frame with its WCS in the header (and ``.wcs``) and the astrometry's QC keywords."""
    header = ccd.meta.copy() if isinstance(ccd.meta, fits.Header) else fits.Header(ccd.meta)
    for key in list(header):
        if key.startswith(
            (
                "A_",
                "B_",
                "AP_",
                "BP_",
                "PV",
                "CD",
                "PC",
                "CRPIX",
                "CRVAL",
                "CTYPE",
                "CUNIT",
                "CDELT",
                "WCSAXES",
                "LONPOLE",
                "LATPOLE",
            )
        ):
            header.remove(key, ignore_missing=True, remove_all=True)
    header.update(wcs.to_header(relax=True))
    header["ASTRMS"] = (round(status.rms_arcsec, 4), "[arcsec] RMS residual of reference stars")
    header["ASTNMAT"] = (status.n_matches, "reference stars in the astrometric fit")
    header["ASTSCALE"] = (round(status.pixel_scale, 5), "[arcsec/px] solved pixel scale")
    header.add_history("aifa-steps: astrometry (solve-field 2 passes, SIP refinement)")
    return with_wcs(ccd, header, wcs)


def solve_frame(
    ccd: CCDData,
    stem: str,
    chain: Table,
    stars: Table,
    refcat: Table | None,
    corr: Table | None,
    pixel_scale: float,
    settings: FrameSettings | None = None,
    solve_field_ran: bool = True,
    problem: str = "",
) -> tuple[CCDData, Table, SolveStatus]:
    """Refine, judge and attach one frame's solution.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        The calibrated frame.
    stem : str
        Its name.
    chain : astropy.table.Table
        Its target's chain table (`aifa_steps.astrometry.chain.chain_table`).
    stars : astropy.table.Table
        Its target's stars (`aifa_steps.astrometry.reference.target_stars`).
    refcat : astropy.table.Table or None
        The reference catalogue (None when ``refine`` is off).
    corr : astropy.table.Table or None
        ``solve-field``'s matched stars of this frame (`aifa_steps.astrometry.solve.read_corr`).
    pixel_scale : float
        Configured pixel scale (arcsec).
    settings : FrameSettings, optional
        Refinement and judgement (the defaults without).
    solve_field_ran : bool
        Whether ``solve-field`` ran on this frame (``astrometry.solve_field``).
    problem : str
        Why the solver configuration lacks index files
        (`aifa_steps.astrometry.index.solver_problem`).

    Returns
    -------
    ccd : astropy.nddata.CCDData
        The frame with its WCS (when solved) and the keywords ``ASTSOLVD``, ``ASTREASN``,
        ``ASTSTART``, ``ASTREF``.
    matched : astropy.table.Table
        The stars of the fit (`MATCH_COLUMNS`; meta ``NAXIS1``, ``NAXIS2``).
    status : SolveStatus
        The verdict, with how the frame got its start and what it was refined against.
    """
    settings = settings or FrameSettings()
    wcs: WCS | None
    wcs, method = chain_start(chain, stem)
    matched = empty_matches()
    failure, reference = "", ""
    if wcs is None:
        failure = chain_failure(chain, stem, solve_field_ran, problem)
    elif settings.refine or method != "solve-field":
        band = str(ccd.meta.get("FILTNAME", ""))
        mag = reference_magnitude(refcat, band, settings.index_mag_column)
        own = own_reference(stars, stem, corr if method == "solve-field" else None)
        try:
            wcs, matched, reference = refine_with_fallback(
                ccd.data, wcs, refcat, own, ccd.mask, mag, settings.sip_order
            )
        except ValueError as exc:
            failure = f"refinement failed: {exc}"
            wcs = None
    else:
        matched = matches_from_corr(corr, wcs, pixel_scale)
        reference = "solve-field"
    status = judge_solution(
        stem,
        wcs,
        matched,
        pixel_scale,
        settings.scale_tolerance,
        settings.rms_limit(pixel_scale),
        settings.min_matches,
        failure,
    )
    status.method, status.reference = method, reference
    if status.solved:
        ccd = attach_wcs(ccd, wcs, status)
    ccd.meta["ASTSOLVD"] = (status.solved, "astrometric solution found and accepted")
    set_card(ccd.meta, "ASTREASN", status.reason[:60], "why the astrometry failed")
    set_card(ccd.meta, "ASTSTART", method[:60], "where the starting WCS came from")
    set_card(ccd.meta, "ASTREF", reference[:60], "what the WCS was refined against")
    matched.meta["NAXIS1"], matched.meta["NAXIS2"] = ccd.shape[1], ccd.shape[0]
    return ccd, matched, status


def failed_status(stem: str, reason: str) -> SolveStatus:
    """The status of a frame whose astrometry could not run (its calibration failed, an error)."""
    return SolveStatus(stem, False, reason, 0, float("nan"))


def status_table(status: SolveStatus, step: str, obj: str, target: str) -> Table:
    """A frame's row of ``astrometry/status.ecsv``.

    Parameters
    ----------
    status : SolveStatus
        The verdict.
    step : str
        The step that failed (kept only when the frame is not solved).
    obj, target : str
        The frame's OBJECT and its file-safe name.
    """
    row = {
        **status.as_dict(),
        "step": "" if status.solved else step,
        "object": obj,
        "target": target,
    }
    return Table(rows=[row])
