# Snakemake adapter: zero points of every frame, extinction, residual and trend figures. Frames
# whose photometry failed get rows without zero point that carry the reason.
from pathlib import Path

from astropy.table import Table, vstack

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.frame import catalogue_aperture_key, photometry_failed, table_apertures
from aifa_steps.photometry.plots import zeropoint_figure, zeropoint_residual_figure
from aifa_steps.photometry.zeropoints import (
    ZeropointParameters,
    failed_frame_zeropoints,
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
    reason = photometry_failed(photometry)
    if reason:
        log.warning("%s: photometry failed: %s", photometry.meta["STEM"], reason)
        radii, keys = table_apertures(references[Path(path).parent.name].meta)
        zp_rows.append(failed_frame_zeropoints(photometry, radii, keys))
        continue
    zps, stars = frame_zeropoints(photometry, references[Path(path).parent.name], params)
    zp_rows.append(zps)
    star_rows.append(stars)
    for row in zps[zps["reason"] != ""]:
        log.warning(
            "%s, aperture %s: no zero point: %s", row["stem"], row["aperture"], row["reason"]
        )
zeropoints = vstack(zp_rows) if zp_rows else Table()
stars = vstack(star_rows) if star_rows else Table()
write_table(zeropoints, out.table)
write_table(stars, out.stars)
aperture = catalogue_aperture_key(snakemake.params.photometry, snakemake.params.zeropoints)
extinction = fit_extinction(zeropoints, aperture) if len(zeropoints) else Table()
write_table(extinction, out.extinction)
targets = photometry_targets(snakemake.params.objects, references, zeropoints)
write_table(targets, out.targets)
for row in targets[targets["reason"] != ""]:
    log.warning("%s: %s", row["object"], row["reason"])
zeropoint_figure(zeropoints, extinction, aperture, out.figure)
zeropoint_residual_figure(stars, aperture, out.residuals)
log.info("%d zero points of %d frames", len(zeropoints), len(zp_rows))
