# Snakemake adapter: forced aperture photometry of one solved frame.
from astropy.table import Table

from aifa_steps.calibrate import read_ccd
from aifa_steps.frame_photometry import FrameInfo, PhotometryParameters, measure_frame
from aifa_steps.observing import Site
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
frame = snakemake.params.frame
info = FrameInfo(
    stem=snakemake.wildcards.stem,
    object=str(frame["object"]),
    filter=str(frame["filter"]),
    exptime=float(frame["exptime"]),
    mjd=float(frame["mjd"]),
)
params = PhotometryParameters.from_config(snakemake.params.photometry, snakemake.params.saturation)
reference = Table.read(snakemake.input.reference)
table = measure_frame(
    read_ccd(snakemake.input.frame),
    reference,
    info,
    Site.from_config(snakemake.params.site),
    tuple(snakemake.params.target),
    params,
)
table.meta["REFFRAME"] = reference.meta.get("REFFRAME", "")
table.write(snakemake.output[0], overwrite=True)
log.info(
    "%s: %d sources, seeing %.2f arcsec, flux fraction in %g arcsec %.3f",
    info.stem,
    len(table),
    table.meta["SEEING"],
    params.apertures_arcsec[0],
    table.meta[f"APFRAC_{params.apertures_arcsec[0]:g}"],
)
