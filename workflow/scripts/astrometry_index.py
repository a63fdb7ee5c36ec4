# Snakemake adapter: build astrometry.net indexes from the reference catalogues (or use given
# index folders) and write the solver configurations of both solve-field passes.
from pathlib import Path

from astropy.table import Table, vstack

from aifa_steps.astrometry import (
    build_indexes,
    index_scales,
    verify_index_scale,
    write_solver_config,
)
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
astro = snakemake.params.astro
solver = Path(snakemake.output.solver)
verifier = Path(snakemake.output.verifier)
dirs = [Path(d) for d in astro["index_dirs"]]
verify_files = []
if astro["build_index"]:
    inventory = Table.read(snakemake.input.inventory)
    lights = inventory[(inventory["imagetyp"] == "light") & inventory["used"]]
    scale = snakemake.params.pixel_scale / 60.0
    width, height = float(lights["naxis1"][0]) * scale, float(lights["naxis2"][0]) * scale
    catalogue = vstack([Table.read(p) for p in snakemake.input.catalogues])
    scales = index_scales(width, height)
    files = build_indexes(catalogue, solver.parent, scales, mag_column=astro["index_mag_column"])
    verify_files = [files[scales.index(verify_index_scale(width, height, scales))]]
if not dirs and not verify_files:
    raise ValueError("astrometry: no index files (set astrometry.build_index or index_dirs)")
write_solver_config(
    solver, [*dirs, solver.parent] if verify_files else dirs, cpulimit=astro["cpulimit"]
)
# Pass 2 verifies with the densest built index only (plus any given folders).
write_solver_config(verifier, dirs, cpulimit=astro["cpulimit"], index_files=verify_files)
log.info("solver configuration %s with index folders %s", solver, dirs)
log.info("pass-2 configuration %s with index files %s and folders %s", verifier, verify_files, dirs)
