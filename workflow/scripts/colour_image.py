# Snakemake adapter: the colour composite of one target's stacks.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from aifa_steps.core.runlog import log_to_file
from aifa_steps.products.colour_image import (
    ColourImageSettings,
    stacks_by_filter,
    write_colour_image,
)

log = log_to_file(snakemake.log[0])
order = list(snakemake.params.order)
write_colour_image(
    stacks_by_filter(snakemake.input.stacks),
    snakemake.output[0],
    order=order,
    settings=ColourImageSettings.from_config(snakemake.params.stacks),
)
log.info("%s: colour image from %s (red, green, blue)", snakemake.wildcards.object, order)
