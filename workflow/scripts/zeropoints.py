# Snakemake adapter: zero points of every frame, extinction, residual and trend figures. Frames
# whose photometry failed get rows without zero point that carry the reason.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from pathlib import Path

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.aperture_plans import catalogue_aperture_key
from aifa_steps.photometry.magnitudes import fit_extinction
from aifa_steps.photometry.plots import zeropoint_figure, zeropoint_residual_figure
from aifa_steps.photometry.settings import ZeropointParameters
from aifa_steps.photometry.zeropoints import night_zeropoints, photometry_targets

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
params = ZeropointParameters.from_config(snakemake.params.zeropoints)
references = {Path(p).parent.name: Table.read(p) for p in inp.references}
frames = ((Table.read(p), references[Path(p).parent.name]) for p in inp.tables)
zeropoints, stars, problems = night_zeropoints(frames, params)
for problem in problems:
    log.warning(problem)
write_table(zeropoints, out.table)
write_table(stars, out.stars)
aperture = catalogue_aperture_key(snakemake.params.photometry, snakemake.params.zeropoints)
extinction = fit_extinction(zeropoints, aperture)
write_table(extinction, out.extinction)
targets = photometry_targets(snakemake.params.objects, references, zeropoints)
write_table(targets, out.targets)
for row in targets[targets["reason"] != ""]:
    log.warning("%s: %s", row["object"], row["reason"])
zeropoint_figure(zeropoints, extinction, aperture, out.figure)
zeropoint_residual_figure(stars, aperture, out.residuals)
log.info("%d zero points of %d frames", len(zeropoints), len(inp.tables))
