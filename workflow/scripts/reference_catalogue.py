# Snakemake adapter: extract the reference catalogue around one target.
from pathlib import Path

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.refcat import reference_extract

log = log_to_file(snakemake.log[0])
cfg = snakemake.params.refcat
ra, dec = snakemake.params.centre
cache = (
    Path(snakemake.params.cache_dir) / f"{snakemake.wildcards.object}_{cfg['radius_deg']:g}deg.ecsv"
)
extract, source, problem = reference_extract(cfg, ra, dec, cache)
if problem:
    log.error("%s: %s", snakemake.wildcards.object, problem)
    extract.meta["problem"] = problem
extract.meta["source"] = source
extract.meta["centre"] = [ra, dec]
write_table(extract, snakemake.output[0])
log.info(
    "%d reference stars within %s deg of %.5f %+.5f from %s",
    len(extract),
    cfg["radius_deg"],
    ra,
    dec,
    source,
)
