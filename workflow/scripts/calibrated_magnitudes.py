# Snakemake adapter: calibrated magnitudes of one target per frame and over the night (frames
# whose photometry failed are left out). With PSF photometry (photometry.method) the night's
# magnitudes are PSF magnitudes, the aperture's beside them.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.aperture_plans import catalogue_aperture_key
from aifa_steps.photometry.frame import usable_photometry
from aifa_steps.photometry.magnitudes import target_magnitudes
from aifa_steps.photometry.settings import ZeropointParameters

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
params = ZeropointParameters.from_config(snakemake.params.zeropoints)
tables = usable_photometry([Table.read(p) for p in inp.tables])
calibrated, magnitudes = target_magnitudes(
    tables,
    Table.read(inp.zeropoints),
    Table.read(inp.reference),
    catalogue_aperture_key(snakemake.params.photometry, snakemake.params.zeropoints),
    params.colour,
    snakemake.wildcards.object,
    psf_tables=[Table.read(p) for p in inp.psf] if snakemake.params.psf else None,
)
write_table(calibrated, out.calibrated)
write_table(magnitudes, out.magnitudes)
log.info(
    "%d sources, %d of %d frames, %s magnitudes",
    len(magnitudes),
    len(tables),
    len(inp.tables),
    magnitudes.meta["METHOD"][0],
)
