# Snakemake adapter: build astrometry.net indexes from the reference catalogues (or use given
# index folders) and write the solver configuration.
from pathlib import Path

from astropy.table import Table, vstack

from aifa_steps.astrometry import build_indexes, index_scales, write_solver_config
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
astro = snakemake.params.astro
out = Path(snakemake.output[0])
dirs = [Path(d) for d in astro["index_dirs"]]
if astro["build_index"]:
    inventory = Table.read(snakemake.input.inventory)
    lights = inventory[(inventory["imagetyp"] == "light") & inventory["used"]]
    scale = snakemake.params.pixel_scale / 60.0
    width, height = float(lights["naxis1"][0]) * scale, float(lights["naxis2"][0]) * scale
    catalogue = vstack([Table.read(p) for p in snakemake.input.catalogues])
    build_indexes(
        catalogue, out.parent, index_scales(width, height), mag_column=astro["index_mag_column"]
    )
    dirs.append(out.parent)
if not dirs:
    raise ValueError("astrometry: no index files (set astrometry.build_index or index_dirs)")
write_solver_config(out, dirs, cpulimit=astro["cpulimit"])
log.info("solver configuration %s with index folders %s", out, dirs)
