# Snakemake adapter: refine and judge one frame's solution; write it as a header-only FITS file
# (the frame's header with the WCS; the pixels stay in the calibrated frame).
# The starting WCS is solve-field's or one handed on from a solved frame of the same target
# (astrometry_chain). A frame whose calibration failed, or whose astrometry raises, gets a
# status row with the step and the reason; the night goes on.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.astrometry.frame import empty_matches, failed_status, solve_frame, status_table
from aifa_steps.astrometry.index import solver_problem
from aifa_steps.astrometry.settings import FrameSettings
from aifa_steps.astrometry.solve import read_corr
from aifa_steps.core.atomic import write_hdul, write_table
from aifa_steps.core.failures import fits_failure, run_frame_step, write_failed_fits
from aifa_steps.core.frames import read_ccd, solution_hdu
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
settings = FrameSettings.from_config(snakemake.params.astro)
stem = snakemake.wildcards.stem
frame = snakemake.params.frame


def write_status(status, step):
    write_table(status_table(status, step, frame["object"], frame["target"]), out.status)
    log.info("%s", status)


def work():
    ccd, matched, status = solve_frame(
        read_ccd(inp.frame),
        stem,
        Table.read(inp.chain),
        Table.read(inp.stars),
        Table.read(inp.refcat) if settings.refine else None,
        read_corr(inp.corr),
        snakemake.params.pixel_scale,
        settings,
        solve_field_ran=snakemake.params.solve == "yes",
        problem=solver_problem(inp.solver),
    )
    write_hdul(solution_hdu(ccd.header, ccd.shape, inp.frame), out.fits)
    write_table(matched, out.matches)
    write_status(status, "astrometry")


def failed(reason, step="astrometry"):
    write_failed_fits(out.fits, step, reason)
    write_table(empty_matches(), out.matches)
    write_status(failed_status(stem, reason), step)


calibration = fits_failure(inp.frame)
if calibration:
    log.warning("%s: calibration failed (%s): no astrometry", stem, calibration[1])
    failed(calibration[1], step=calibration[0] or "calibration")
else:
    run_frame_step("astrometry", stem, work, failed)
