# Snakemake adapter: build astrometry.net indexes from the reference catalogues (or use given
# index folders) and write the solver configurations of both solve-field passes. When no index
# can be built (an empty catalogue), the configurations say why and every frame's status will.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table, vstack

from aifa_steps.astrometry.index import write_solver_configs
from aifa_steps.astrometry.settings import IndexSettings
from aifa_steps.core.runlog import log_to_file

log_to_file(snakemake.log[0])
settings = IndexSettings.from_config(snakemake.params.astro)
catalogue = None
if settings.build_index:
    catalogue = vstack([Table.read(p) for p in snakemake.input.catalogues])
write_solver_configs(
    snakemake.output.solver,
    snakemake.output.verifier,
    catalogue,
    snakemake.params.field_arcmin,
    settings.build_index,
    settings.index_dirs,
    settings.index_mag_column,
    settings.cpulimit,
)
