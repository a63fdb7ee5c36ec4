# Snakemake adapter: calibrate one science frame with the night's masters.
from aifa_steps.calibrate import (
    CalibrationParameters,
    Masters,
    calibrate_frame,
    frame_statistics,
    write_ccd,
)
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, params = snakemake.input, snakemake.params
masters = Masters.load(inp.bias, list(inp.darks), {params.filter: inp.flat}, inp.bad_pixels)
cal_params = CalibrationParameters(
    gain=params.instrument["gain"],
    read_noise=params.instrument["read_noise"],
    saturation=params.instrument["saturation"],
    cosmic_rays=params.cal["cosmic_rays"],
    cosmic_ray_sigma=params.cal["cosmic_ray_sigma"],
    exptime_keyword=params.exptime_keyword,
)
ccd = calibrate_frame(inp.raw, masters, params.filter, cal_params)
stats = frame_statistics(ccd)
for key, card in (
    ("sky_median", "SKYMED"),
    ("sky_std", "SKYSTD"),
    ("predicted_std", "SKYPRED"),
    ("n_saturated", "NSATUR"),
    ("n_masked", "NMASKED"),
):
    ccd.meta[card] = (stats[key], f"QC: {key.replace('_', ' ')}")
write_ccd(ccd, snakemake.output[0])
log.info("calibrated %s: %s", inp.raw, stats)
