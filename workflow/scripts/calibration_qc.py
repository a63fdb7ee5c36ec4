# Snakemake adapter: statistics and previews of the masters, statistics of calibrated frames.
from aifa_steps.qc import calibration_report
from aifa_steps.runlog import log_to_file

log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
inst = snakemake.params.instrument
calibration_report(
    bias=inp.bias[0] if inp.bias else None,
    darks=list(inp.darks),
    flats=list(inp.flats),
    bad_pixels=inp.bad_pixels,
    frames=list(inp.frames),
    read_noise_adu=inst["read_noise"] / inst["gain"],
    masters_table=out.masters,
    frames_table=out.frames,
    preview_dir=out.previews,
    frames_plot=out.frames_plot,
)
