# Snakemake adapter: combine the night's biases into the master bias (a header-only file
# saying why, when that fails).

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from aifa_steps.calibration.masters import ClipParameters, make_master_bias
from aifa_steps.core.failures import run_frame_step, write_failed_fits
from aifa_steps.core.frames import write_ccd
from aifa_steps.core.runlog import log_to_file
from aifa_steps.inventory.readout import ReadoutSettings

log = log_to_file(snakemake.log[0])
clip = ClipParameters.from_config(snakemake.params.cal)
readout = ReadoutSettings.from_config(snakemake.params.readout)


def work():
    master = make_master_bias(list(snakemake.input), clip, readout, threads=snakemake.threads)
    write_ccd(master, snakemake.output[0], compact=False)
    log.info("master bias from %d frames", len(snakemake.input))


run_frame_step(
    "master_bias",
    "bias",
    work,
    lambda reason: write_failed_fits(snakemake.output[0], "master_bias", reason),
)
