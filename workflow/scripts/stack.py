# Snakemake adapter: the stack of one target in one filter on its reference frame's grid.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.aperture_plans import smallest_aperture_key
from aifa_steps.products.stack_files import make_stack
from aifa_steps.products.stacking import BackgroundSettings, StackParameters

log = log_to_file(snakemake.log[0])
_, message = make_stack(
    list(zip(snakemake.input.frames, snakemake.input.solutions, strict=True)),
    snakemake.params.frames,
    Table.read(snakemake.input.zeropoints),
    smallest_aperture_key(snakemake.params.photometry),
    snakemake.input.grid,
    snakemake.output[0],
    {"OBJECT": snakemake.wildcards.object, "FILTER": snakemake.wildcards.filter},
    StackParameters.from_config(snakemake.params.stacks),
    BackgroundSettings.from_config(snakemake.params.photometry),
)
log.info("%s", message)
