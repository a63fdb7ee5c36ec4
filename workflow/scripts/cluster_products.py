# Snakemake adapter: calibrated catalogue and colour-magnitude diagram of one cluster.
from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.products.cmd import cluster_catalogue, cmd_figure, read_isochrone

log = log_to_file(snakemake.log[0])
target = snakemake.params.target
catalogue = cluster_catalogue(
    Table.read(snakemake.input.magnitudes), float(target["ra"]), float(target["dec"])
)
catalogue.meta["OBJECT"] = snakemake.params.name
write_table(catalogue, snakemake.output.catalogue)
isochrone = read_isochrone(snakemake.input.isochrone) if snakemake.input.isochrone else None
cmd_figure(
    catalogue,
    snakemake.output.figure,
    f"{snakemake.params.name}: r against g - i",
    radius_arcmin=target.get("radius_arcmin"),
    isochrone=isochrone,
)
log.info("%d sources in the catalogue of %s", len(catalogue), snakemake.params.name)
