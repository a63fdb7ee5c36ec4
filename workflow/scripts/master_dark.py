# Snakemake adapter: combine the darks of one exposure time, bias subtracted.
from aifa_steps.calibrate import read_ccd, write_ccd
from aifa_steps.masters import ClipParameters, make_master_dark
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
cal = snakemake.params.cal
clip = ClipParameters(
    cal["sigma_clip"], cal["max_iterations"], cal["memory_limit_mb"], snakemake.threads
)
bias = read_ccd(snakemake.input.bias)
bias.meta["FILENAME"] = "bias.fits"
master = make_master_dark(list(snakemake.input.darks), bias, clip)
write_ccd(master, snakemake.output[0])
log.info("master dark of %s s from %d frames", master.meta["EXPTIME"], len(snakemake.input.darks))
