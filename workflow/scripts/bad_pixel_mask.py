# Snakemake adapter: bad-pixel mask from the longest master dark and all master flats.
from astropy.io import fits

from aifa_steps.badpixels import HOT, LOW_RESPONSE, bad_pixel_mask
from aifa_steps.calibrate import read_ccd
from aifa_steps.provenance import add_provenance
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
cal = snakemake.params.cal
darks = [read_ccd(p) for p in snakemake.input.darks]
longest = max(darks, key=lambda d: float(d.meta["EXPTIME"])) if darks else None
flats = [read_ccd(p) for p in snakemake.input.flats]
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
fits.PrimaryHDU(mask, header).writeto(snakemake.output[0], overwrite=True)
log.info("%d hot and %d low-response pixels", header["NHOT"], header["NLOWRESP"])
