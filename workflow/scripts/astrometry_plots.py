# Snakemake adapter: the residual-vector plot of every solved frame.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.astrometry.plots import residual_plots
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
n = residual_plots(
    Table.read(snakemake.input.table), list(snakemake.input.matches), snakemake.output[0]
)
log.info("%d residual plots in %s", n, snakemake.output[0])
