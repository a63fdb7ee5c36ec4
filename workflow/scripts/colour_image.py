# Snakemake adapter: the colour composite of one target's stacks.
from pathlib import Path

from aifa_steps.core.runlog import log_to_file
from aifa_steps.products.colour_image import write_colour_image

log = log_to_file(snakemake.log[0])
order = list(snakemake.params.order)
paths = {Path(p).stem.removeprefix("stack_"): p for p in snakemake.input.stacks}
write_colour_image(
    paths,
    snakemake.output[0],
    order=order,
    stretch_sigma=float(snakemake.params.stretch_sigma),
    q=float(snakemake.params.q),
)
log.info("%s: colour image from %s (red, green, blue)", snakemake.wildcards.object, order)
