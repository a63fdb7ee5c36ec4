# Snakemake adapter: refine and judge one frame's solution, attach it to the calibrated frame.
# A frame whose calibration failed, or whose astrometry raises, gets a status row with the step
# and the reason; the night goes on.
from astropy.table import Table

from aifa_steps.astrometry import (
    SolveStatus,
    attach_wcs,
    judge_solution,
    matches_from_corr,
    read_solution,
    refine_wcs,
    solver_problem,
)
from aifa_steps.atomic import write_table
from aifa_steps.calibrate import read_ccd, write_ccd
from aifa_steps.failures import fits_failure, run_frame_step, write_failed_fits
from aifa_steps.fitsutil import set_card
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, out, astro = snakemake.input, snakemake.output, snakemake.params.astro
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
    wcs = read_solution(inp.wcs)
    matched = Table(names=EMPTY_MATCHES)
    failure = ""
    if wcs is None:
        problem = solver_problem(inp.solver)
        failure = "solve-field found no solution" + (f": {problem}" if problem else "")
    if wcs is not None and astro["refine"]:
        refcat = Table.read(inp.refcat)
        band = str(ccd.meta.get("FILTNAME", ""))
        mag = f"{band}mag" if f"{band}mag" in refcat.colnames else astro["index_mag_column"]
        try:
            wcs, matched = refine_wcs(
                ccd.data, wcs, refcat, mask=ccd.mask, mag_column=mag, sip_degree=astro["sip_order"]
            )
        except ValueError as exc:
            failure = f"refinement failed: {exc}"
            wcs = None
    elif wcs is not None:
        matched = matches_from_corr(Table.read(inp.corr), wcs, snakemake.params.pixel_scale)
    status = judge_solution(
        stem,
        wcs,
        matched,
        snakemake.params.pixel_scale,
        astro["scale_tolerance"],
        astro["max_rms_arcsec"],
        astro["min_matches"],
        failure,
    )
    if status.solved:
        ccd = attach_wcs(ccd, wcs, status)
    ccd.meta["ASTSOLVD"] = (status.solved, "astrometric solution found and accepted")
    set_card(ccd.meta, "ASTREASN", status.reason[:60], "why the astrometry failed")
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
