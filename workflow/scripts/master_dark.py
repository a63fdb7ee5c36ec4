# Snakemake adapter: combine the darks of one exposure time, bias subtracted when the night has
# biases (a header-only file saying why, when that fails).

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from aifa_steps.calibration.masters import ClipParameters, make_master_dark
from aifa_steps.calibration.masterset import Masters
from aifa_steps.core.failures import run_frame_step, write_failed_fits
from aifa_steps.core.frames import write_ccd
from aifa_steps.core.runlog import log_to_file
from aifa_steps.inventory.readout import ReadoutSettings

log = log_to_file(snakemake.log[0])
clip = ClipParameters.from_config(snakemake.params.cal)
readout = ReadoutSettings.from_config(snakemake.params.readout)
out = snakemake.output[0]


def work():
    bias = Masters.load(snakemake.input.bias[0] if snakemake.input.bias else None, [], {}).bias
    if bias is not None:
        bias.meta["FILENAME"] = "bias.fits"
    master = make_master_dark(
        list(snakemake.input.darks), bias, clip, readout=readout, threads=snakemake.threads
    )
    write_ccd(master, out, compact=False)
    log.info(
        "master dark of %s s from %d frames%s",
        master.meta["EXPTIME"],
        len(snakemake.input.darks),
        "" if bias is not None else " (no master bias: bias level included)",
    )


run_frame_step(
    "master_dark",
    f"dark_{snakemake.wildcards.exptime}s",
    work,
    lambda reason: write_failed_fits(out, "master_dark", reason),
)
