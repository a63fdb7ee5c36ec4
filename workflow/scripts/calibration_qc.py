# Snakemake adapter: statistics and previews of the masters, statistics of calibrated frames.
from astropy.table import Table

from aifa_steps.calibration.camera import resolve_detector
from aifa_steps.calibration.qc import calibration_report
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
inst = snakemake.params.instrument
# The night's values (a raw header's own value, when it differs, is in each frame's header).
try:
    gain, read_noise, _, _ = resolve_detector(
        inst, night=Table.read(inp.detector[0]) if inp.detector else None
    )
except ValueError as error:  # unresolved: the frames' headers say what they used
    log.warning("%s", error)
    gain, read_noise = 1.0, float("nan")
calibration_report(
    bias=inp.bias[0] if inp.bias else None,
    darks=list(inp.darks),
    flats=list(inp.flats),
    bad_pixels=inp.bad_pixels,
    frames=list(inp.frames),
    read_noise_adu=read_noise / gain,
    masters_table=out.masters,
    frames_table=out.frames,
    preview_dir=out.previews,
    frames_plot=out.frames_plot,
)
