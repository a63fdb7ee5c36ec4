# Snakemake adapter: bad-pixel mask from the longest master dark and all master flats; without
# any of them (or when they failed) a header-only file that says why.
from pathlib import Path

from astropy.io import fits

from aifa_steps.calibration.badpixels import bad_pixel_mask
from aifa_steps.calibration.calibrate import Masters
from aifa_steps.core.atomic import write_hdul
from aifa_steps.core.failures import FrameFailure, run_frame_step, write_failed_fits
from aifa_steps.core.formats import HOT, LOW_RESPONSE
from aifa_steps.core.provenance import add_provenance
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
cal = snakemake.params.cal
out = snakemake.output[0]


def work():
    flat_files = {Path(p).stem.removeprefix("flat_"): p for p in snakemake.input.flats}
    masters = Masters.load(None, list(snakemake.input.darks), flat_files)
    darks = list(masters.darks.values())
    flats = list(masters.flats.values())
    if not darks and not flats:
        missing = [m for key, m in masters.missing.items() if key != "bias"]
        raise FrameFailure(
            "skipped: the night has no usable master dark or flat"
            + (f" ({'; '.join(missing)})" if missing else "")
        )
    longest = max(darks, key=lambda d: float(d.meta["EXPTIME"])) if darks else None
    if longest is not None and longest.meta.get("BIASINCL", False):
        log.warning("the darks include the bias level (no bias frames): its pattern adds noise")
    mask = bad_pixel_mask(
        longest, flats, cal["hot_pixel_sigma"], cal["low_response"], cal["high_response"]
    )
    header = fits.Header()
    header["BITS"] = ("1 hot, 2 low response, 4 high response", "meaning of mask bits")
    header["NHOT"] = (int(((mask & HOT) > 0).sum()), "hot pixels")
    header["NLOWRESP"] = (int(((mask & LOW_RESPONSE) > 0).sum()), "low-response pixels")
    add_provenance(
        header,
        "bad-pixel mask",
        list(snakemake.input.darks) + list(snakemake.input.flats),
        {k: cal[k] for k in ("hot_pixel_sigma", "low_response", "high_response")},
    )
    write_hdul(fits.PrimaryHDU(mask, header), out)
    log.info("%d hot and %d low-response pixels", header["NHOT"], header["NLOWRESP"])


run_frame_step(
    "bad_pixel_mask",
    "bad_pixels",
    work,
    lambda reason: write_failed_fits(out, "bad_pixel_mask", reason),
)
