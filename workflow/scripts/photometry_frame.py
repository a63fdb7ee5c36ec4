# Snakemake adapter: forced aperture photometry of one solved frame. A frame that cannot be
# measured (no stars, any error) gets a table without rows that says why; the night goes on.
from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.failures import run_frame_step
from aifa_steps.core.frames import read_ccd
from aifa_steps.core.observing import Site
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.frame import (
    FrameInfo,
    PhotometryParameters,
    check_stars_measured,
    failed_photometry,
    measure_frame,
)

log = log_to_file(snakemake.log[0])
frame = snakemake.params.frame
out = snakemake.output[0]
info = FrameInfo(
    stem=snakemake.wildcards.stem,
    object=str(frame["object"]),
    filter=str(frame["filter"]),
    exptime=float(frame["exptime"]),
    mjd=float(frame["mjd"]),
)
params = PhotometryParameters.from_config(snakemake.params.photometry, snakemake.params.saturation)


def work():
    reference = Table.read(snakemake.input.reference)
    table = measure_frame(
        read_ccd(snakemake.input.frame),
        reference,
        info,
        Site.from_config(snakemake.params.site),
        tuple(snakemake.params.target),
        params,
    )
    check_stars_measured(table)
    table.meta["REFFRAME"] = reference.meta.get("REFFRAME", "")
    table.meta["TARGET"] = frame["target"]
    table.meta["PHOTOK"] = True
    write_table(table, out)
    log.info(
        "%s: %d sources, seeing %.2f arcsec, flux fraction in %.2f arcsec (%s) %.3f",
        info.stem,
        len(table),
        table.meta["SEEING"],
        table.meta["APERTURES"][0],
        table.meta["APKEYS"][0],
        table.meta[f"APFRAC_{table.meta['APKEYS'][0]}"],
    )


run_frame_step(
    "photometry",
    info.stem,
    work,
    lambda reason: write_table(failed_photometry(info, reason, frame["target"]), out),
)
