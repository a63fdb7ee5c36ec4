# Snakemake adapter: combine the flats of one filter (bias and scaled dark removed).
from aifa_steps.calibrate import read_ccd, write_ccd
from aifa_steps.masters import ClipParameters, make_master_flat
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
cal = snakemake.params.cal
clip = ClipParameters(
    cal["sigma_clip"], cal["max_iterations"], cal["memory_limit_mb"], snakemake.threads
)
bias = read_ccd(snakemake.input.bias)
darks = {float(d.meta["EXPTIME"]): d for d in map(read_ccd, snakemake.input.darks)}
master, frames = make_master_flat(
    list(snakemake.input.flats),
    bias,
    darks,
    min_level=cal["flat_min_adu"],
    max_level=cal["flat_max_adu"],
    saturation=snakemake.params.saturation,
    clip=clip,
    filter_name=snakemake.wildcards.filter,
)
write_ccd(master, snakemake.output.flat)
frames.write(snakemake.output.frames, overwrite=True)
log.info(
    "master flat %s from %d of %d flats",
    snakemake.wildcards.filter,
    frames["used"].sum(),
    len(frames),
)
