# Snakemake adapter: calibrated catalogue and colour-magnitude diagram of one cluster.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.products.cmd import CmdSettings, cluster_products

log = log_to_file(snakemake.log[0])
catalogue = cluster_products(
    Table.read(snakemake.input.magnitudes),
    CmdSettings.from_config(snakemake.params.target),
    snakemake.params.name,
    snakemake.output.figure,
    isochrone=snakemake.input.isochrone or None,
)
write_table(catalogue, snakemake.output.catalogue)
log.info("%d sources in the catalogue of %s", len(catalogue), snakemake.params.name)
