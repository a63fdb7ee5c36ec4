# Snakemake adapter: bad-pixel mask from the longest master dark and all master flats; without
# any of them (or when they failed) a header-only file that says why.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.io import fits

from aifa_steps.calibration.badpixels import BadPixelSettings, mask_from_masters, mask_header
from aifa_steps.calibration.masterset import Masters
from aifa_steps.core.atomic import write_hdul
from aifa_steps.core.failures import run_frame_step, write_failed_fits
from aifa_steps.core.formats import frame_stem
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
settings = BadPixelSettings.from_config(snakemake.params.cal)
out = snakemake.output[0]


def work():
    flat_files = {frame_stem(p).removeprefix("flat_"): p for p in snakemake.input.flats}
    masters = Masters.load(None, list(snakemake.input.darks), flat_files)
    mask = mask_from_masters(masters, settings)
    inputs = list(snakemake.input.darks) + list(snakemake.input.flats)
    header = mask_header(mask, inputs, settings)
    write_hdul(fits.PrimaryHDU(mask, header), out)
    log.info("%d hot and %d low-response pixels", header["NHOT"], header["NLOWRESP"])


run_frame_step(
    "bad_pixel_mask",
    "bad_pixels",
    work,
    lambda reason: write_failed_fits(out, "bad_pixel_mask", reason),
)
