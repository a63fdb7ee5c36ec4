# Snakemake adapter: calibrated magnitudes of one target per frame and over the night (frames
# whose photometry failed are left out).
from astropy.table import Table, vstack

from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.frame import catalogue_aperture_key, usable_photometry
from aifa_steps.photometry.zeropoints import (
    ZeropointParameters,
    calibrated_magnitudes,
    night_magnitudes,
)

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
params = ZeropointParameters.from_config(snakemake.params.zeropoints)
reference = Table.read(inp.reference)
zeropoints = Table.read(inp.zeropoints)
tables = usable_photometry([Table.read(p) for p in inp.tables])
frames = []
for photometry in tables:
    mine = zeropoints[zeropoints["stem"] == photometry.meta["STEM"]]
    frames.append(calibrated_magnitudes(photometry, mine, reference, params.colour))
calibrated = vstack(frames) if frames else Table()
write_table(calibrated, out.calibrated)
aperture = catalogue_aperture_key(snakemake.params.photometry, snakemake.params.zeropoints)
magnitudes = night_magnitudes(calibrated, reference, aperture)
magnitudes.meta["OBJECT"] = reference.meta.get("OBJECT", snakemake.wildcards.object)
write_table(magnitudes, out.magnitudes)
log.info("%d sources, %d of %d frames", len(magnitudes), len(frames), len(inp.tables))
