# Snakemake adapter: refine and judge one frame's solution, attach it to the calibrated frame.
# The starting WCS is solve-field's or one handed on from a solved frame of the same target
# (astrometry_chain). A frame whose calibration failed, or whose astrometry raises, gets a
# status row with the step and the reason; the night goes on.
from astropy.table import Table

from aifa_steps.astrometry.chain import (
    chain_failure,
    chain_start,
    own_reference,
    read_corr,
    refine_with_fallback,
    rms_limit_arcsec,
)
from aifa_steps.astrometry.solve import (
    SolveStatus,
    attach_wcs,
    judge_solution,
    matches_from_corr,
    solver_problem,
)
from aifa_steps.core.atomic import write_table
from aifa_steps.core.failures import fits_failure, run_frame_step, write_failed_fits
from aifa_steps.core.fitsutil import set_card
from aifa_steps.core.frames import read_ccd, write_ccd
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, out, astro = snakemake.input, snakemake.output, snakemake.params.astro
scale = snakemake.params.pixel_scale
stem = snakemake.wildcards.stem
frame = snakemake.params.frame
EMPTY_MATCHES = ("x", "y", "ra", "dec", "dx", "dy", "residual_arcsec")


def write_status(status, step):
    row = {
        **status.as_dict(),
        "step": "" if status.solved else step,
        "object": frame["object"],
        "target": frame["target"],
    }
    write_table(Table(rows=[row]), out.status)
    log.info("%s", status)


def work():
    ccd = read_ccd(inp.frame)
    chain = Table.read(inp.chain)
    wcs, method = chain_start(chain, stem)
    matched = Table(names=EMPTY_MATCHES)
    failure, reference = "", ""
    if wcs is None:
        failure = chain_failure(
            chain, stem, snakemake.params.solve == "yes", solver_problem(inp.solver)
        )
    elif astro["refine"] or method != "solve-field":
        refcat = Table.read(inp.refcat) if astro["refine"] else None
        band = str(ccd.meta.get("FILTNAME", ""))
        mag = astro["index_mag_column"]
        if refcat is not None and f"{band}mag" in refcat.colnames:
            mag = f"{band}mag"
        corr = read_corr(inp.corr) if method == "solve-field" else None
        stars = own_reference(Table.read(inp.stars), stem, corr)
        try:
            wcs, matched, reference = refine_with_fallback(
                ccd.data, wcs, refcat, stars, ccd.mask, mag, astro["sip_order"]
            )
        except ValueError as exc:
            failure = f"refinement failed: {exc}"
            wcs = None
    else:
        matched = matches_from_corr(Table.read(inp.corr), wcs, scale)
        reference = "solve-field"
    status = judge_solution(
        stem,
        wcs,
        matched,
        scale,
        astro["scale_tolerance"],
        rms_limit_arcsec(scale, astro["max_rms_arcsec"], astro["max_rms_pixels"]),
        astro["min_matches"],
        failure,
    )
    status.method, status.reference = method, reference
    if status.solved:
        ccd = attach_wcs(ccd, wcs, status)
    ccd.meta["ASTSOLVD"] = (status.solved, "astrometric solution found and accepted")
    set_card(ccd.meta, "ASTREASN", status.reason[:60], "why the astrometry failed")
    set_card(ccd.meta, "ASTSTART", method[:60], "where the starting WCS came from")
    set_card(ccd.meta, "ASTREF", reference[:60], "what the WCS was refined against")
    write_ccd(ccd, out.fits)
    matched.meta["NAXIS1"], matched.meta["NAXIS2"] = ccd.shape[1], ccd.shape[0]
    write_table(matched, out.matches)
    write_status(status, "astrometry")


def failed(reason, step="astrometry"):
    write_failed_fits(out.fits, step, reason)
    write_table(Table(names=EMPTY_MATCHES), out.matches)
    write_status(SolveStatus(stem, False, reason, 0, float("nan")), step)


calibration = fits_failure(inp.frame)
if calibration:
    log.warning("%s: calibration failed (%s): no astrometry", stem, calibration[1])
    failed(calibration[1], step=calibration[0] or "calibration")
else:
    run_frame_step("astrometry", stem, work, failed)
