# Snakemake adapter: extract the reference catalogue around one target.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.refcat import RefcatSettings, target_catalogue

log = log_to_file(snakemake.log[0])
settings = RefcatSettings.from_config(snakemake.params.refcat)
target = snakemake.wildcards.object
ra, dec = snakemake.params.centre
extract, problem = target_catalogue(settings, target, ra, dec, snakemake.params.cache_dir)
if problem:
    log.error("%s: %s", target, problem)
write_table(extract, snakemake.output[0])
log.info(
    "%d reference stars within %s deg of %.5f %+.5f from %s",
    len(extract),
    settings.radius_deg,
    ra,
    dec,
    extract.meta["source"],
)
