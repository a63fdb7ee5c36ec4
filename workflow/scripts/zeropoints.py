# Snakemake adapter: zero points of every frame, extinction, residual and trend figures.
from pathlib import Path

from astropy.table import Table, vstack

from aifa_steps.photometry_plots import zeropoint_figure, zeropoint_residual_figure
from aifa_steps.runlog import log_to_file
from aifa_steps.zeropoints import (
    ZeropointParameters,
    fit_extinction,
    frame_zeropoints,
    photometry_targets,
)

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
params = ZeropointParameters.from_config(snakemake.params.zeropoints)
references = {Path(p).parent.name: Table.read(p) for p in inp.references}
zp_rows, star_rows = [], []
for path in inp.tables:
    photometry = Table.read(path)
    zps, stars = frame_zeropoints(photometry, references[Path(path).parent.name], params)
    zp_rows.append(zps)
    star_rows.append(stars)
    for row in zps[zps["reason"] != ""]:
        log.warning(
            "%s, %g arcsec: no zero point: %s", row["stem"], row["aperture_arcsec"], row["reason"]
        )
zeropoints = vstack(zp_rows) if zp_rows else Table()
stars = vstack(star_rows) if star_rows else Table()
zeropoints.write(out.table, overwrite=True)
stars.write(out.stars, overwrite=True)
aperture = params.catalogue_aperture_arcsec
extinction = fit_extinction(zeropoints, aperture) if len(zeropoints) else Table()
extinction.write(out.extinction, overwrite=True)
targets = photometry_targets(snakemake.params.objects, references, zeropoints)
targets.write(out.targets, overwrite=True)
for row in targets[targets["reason"] != ""]:
    log.warning("%s: %s", row["object"], row["reason"])
zeropoint_figure(zeropoints, extinction, aperture, out.figure)
zeropoint_residual_figure(stars, aperture, out.residuals)
log.info("%d zero points of %d frames", len(zeropoints), len(zp_rows))
