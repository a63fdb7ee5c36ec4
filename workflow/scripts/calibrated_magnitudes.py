# Snakemake adapter: calibrated magnitudes of one target per frame and over the night.
from astropy.table import Table, vstack

from aifa_steps.runlog import log_to_file
from aifa_steps.zeropoints import (
    ZeropointParameters,
    calibrated_magnitudes,
    night_magnitudes,
)

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
params = ZeropointParameters.from_config(snakemake.params.zeropoints)
reference = Table.read(inp.reference)
zeropoints = Table.read(inp.zeropoints)
frames = []
for path in inp.tables:
    photometry = Table.read(path)
    mine = zeropoints[zeropoints["stem"] == photometry.meta["STEM"]]
    frames.append(calibrated_magnitudes(photometry, mine, reference, params.colour))
calibrated = vstack(frames)
calibrated.write(out.calibrated, overwrite=True)
magnitudes = night_magnitudes(calibrated, reference, params.catalogue_aperture_arcsec)
magnitudes.meta["OBJECT"] = snakemake.wildcards.object
magnitudes.write(out.magnitudes, overwrite=True)
log.info("%d sources, %d frames", len(magnitudes), len(frames))
