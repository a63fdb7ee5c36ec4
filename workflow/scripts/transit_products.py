# Snakemake adapter: differential light curve and transit fit of one time-series target.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.atomic import write_json, write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.frame import usable_photometry
from aifa_steps.products.lightcurve import TransitSettings, transit_products
from aifa_steps.products.plots import lightcurve_figure

log = log_to_file(snakemake.log[0])
name = snakemake.params.name
result = transit_products(
    usable_photometry([Table.read(p) for p in snakemake.input.tables]),
    Table.read(snakemake.input.reference),
    TransitSettings.from_config(snakemake.params.target),
    name,
    aperture_m=float(snakemake.params.aperture_m),
    elevation_m=float(snakemake.params.elevation_m),
)
for note in result["notes"]:
    log.info("%s", note)
write_table(result["table"], snakemake.output.table)
write_table(result["comparisons"], snakemake.output.comparisons)
write_json(snakemake.output.fit, result["summary"])
lightcurve_figure(
    result, snakemake.output.figure, f"{name}: transit light curve", result["ephemeris"]
)
log.info("%s: %s", name, result["summary"])
