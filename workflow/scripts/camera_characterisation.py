# Snakemake adapter: gain and read noise from the night's biases and flats (what the night
# lacks is skipped with the reason in qc/camera.ecsv).
from aifa_steps.atomic import write_table
from aifa_steps.calibrate import Masters
from aifa_steps.camera import characterise_camera, photon_transfer_figure
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inst = snakemake.params.instrument
bias = Masters.load(snakemake.input.bias[0] if snakemake.input.bias else None, [], {}).bias
summary, pairs = characterise_camera(
    list(snakemake.input.biases),
    list(snakemake.input.flats),
    None if bias is None else bias.data,
    inst["gain"],
    inst["read_noise"],
    inst["saturation"],
    snakemake.params.tolerance,
)
write_table(summary, snakemake.output.summary)
write_table(pairs, snakemake.output.pairs)
photon_transfer_figure(summary, pairs, snakemake.output.plot)
log.info("\n%s", summary)
