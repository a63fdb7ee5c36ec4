# Snakemake adapter: the night's astrometry status table, its figure, a residual plot per target.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table, vstack

from aifa_steps.astrometry.plots import astrometry_report
from aifa_steps.core.runlog import log_to_file

log_to_file(snakemake.log[0])
table = vstack([Table.read(p) for p in snakemake.input.status])
astrometry_report(
    table,
    list(snakemake.input.matches),
    snakemake.output.table,
    snakemake.output.plot,
    snakemake.output.residuals,
)
