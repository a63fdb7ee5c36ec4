# Snakemake adapter: forced aperture photometry of one solved frame. A frame that cannot be
# measured (no stars, any error) gets a table without rows that says why; the night goes on.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.failures import run_frame_step
from aifa_steps.core.frames import read_solved
from aifa_steps.core.observing import Site
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.frame import (
    FrameInfo,
    failed_photometry,
    frame_photometry,
    frame_photometry_summary,
)
from aifa_steps.photometry.settings import PhotometryParameters

log = log_to_file(snakemake.log[0])
frame = snakemake.params.frame
out = snakemake.output[0]
info = FrameInfo.from_inventory(snakemake.wildcards.stem, frame)
params = PhotometryParameters.from_config(snakemake.params.photometry)


def work():
    table = frame_photometry(
        read_solved(snakemake.input.frame, snakemake.input.solution),
        Table.read(snakemake.input.reference),
        info,
        Site.from_config(snakemake.params.site),
        tuple(snakemake.params.target),
        params,
        snakemake.params.saturation,
        frame["target"],
    )
    write_table(table, out)
    log.info(frame_photometry_summary(table))


run_frame_step(
    "photometry",
    info.stem,
    work,
    lambda reason: write_table(failed_photometry(info, reason, frame["target"]), out),
)
