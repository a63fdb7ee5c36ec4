# Snakemake adapter: statistics and previews of the masters, statistics of calibrated frames.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.calibration.detector import night_read_noise_adu
from aifa_steps.calibration.qc import calibration_report
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
night = Table.read(inp.detector[0]) if inp.detector else None
calibration_report(
    bias=inp.bias[0] if inp.bias else None,
    darks=list(inp.darks),
    flats=list(inp.flats),
    bad_pixels=inp.bad_pixels,
    frames=list(inp.frames),
    read_noise_adu=night_read_noise_adu(snakemake.params.instrument, night),
    masters_table=out.masters,
    frames_table=out.frames,
    preview_dir=out.previews,
    frames_plot=out.frames_plot,
)
