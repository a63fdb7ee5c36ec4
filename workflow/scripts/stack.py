# Snakemake adapter: the stack of one target in one filter on its reference frame's grid.
from pathlib import Path

from astropy.table import Table

from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.aperture_plans import smallest_aperture_key
from aifa_steps.products.stacking import (
    StackParameters,
    grid_of,
    stack_frames,
    stack_inputs,
    write_stack,
)

log = log_to_file(snakemake.log[0])
params = StackParameters.from_config(snakemake.params.stacks, snakemake.params.photometry)
aperture = smallest_aperture_key(snakemake.params.photometry)
zeropoints = Table.read(snakemake.input.zeropoints)
frames = stack_inputs(
    snakemake.input.frames,
    Table(rows=snakemake.params.frames, names=("stem", "exptime")),
    zeropoints,
    aperture,
)
wcs, shape = grid_of(snakemake.input.grid)
stack = stack_frames(frames, wcs, shape, params)
write_stack(
    stack,
    snakemake.output[0],
    {
        "OBJECT": snakemake.wildcards.object,
        "FILTER": snakemake.wildcards.filter,
        "GRIDFRAM": Path(snakemake.input.grid).stem[:68],  # the frame whose grid it is on
    },
    snakemake.input.frames,
    params,
)
log.info(
    "%s %s: %d of %d frames, MAGZPT %.3f, exposure up to %.0f s",
    snakemake.wildcards.object,
    snakemake.wildcards.filter,
    len(stack.stems),
    len(frames),
    stack.zeropoint,
    float(stack.exposure.max()),
)
