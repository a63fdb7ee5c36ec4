# Snakemake adapter: gain and read noise from the night's biases and flats.
from aifa_steps.calibrate import read_ccd
from aifa_steps.camera import characterise_camera, photon_transfer_figure
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inst = snakemake.params.instrument
bias = read_ccd(snakemake.input.bias)
summary, pairs = characterise_camera(
    list(snakemake.input.biases),
    list(snakemake.input.flats),
    bias.data,
    inst["gain"],
    inst["read_noise"],
    inst["saturation"],
    snakemake.params.tolerance,
)
summary.write(snakemake.output.summary, overwrite=True)
pairs.write(snakemake.output.pairs, overwrite=True)
photon_transfer_figure(summary, pairs, snakemake.output.plot)
log.info("\n%s", summary)
