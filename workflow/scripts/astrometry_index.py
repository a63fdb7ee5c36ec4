# Snakemake adapter: build astrometry.net indexes from the reference catalogues (or use given
# index folders) and write the solver configurations of both solve-field passes. When no index
# can be built (an empty catalogue), the configurations say why and every frame's status will.
from pathlib import Path

from astropy.table import Table, vstack

from aifa_steps.astrometry.solve import (
    build_indexes,
    index_scales,
    verify_index_scale,
    write_solver_config,
)
from aifa_steps.core.runlog import log_to_file

log = log_to_file(snakemake.log[0])
astro = snakemake.params.astro
solver = Path(snakemake.output.solver)
verifier = Path(snakemake.output.verifier)
dirs = [Path(d) for d in astro["index_dirs"]]
verify_files = []
problem = ""
if astro["build_index"]:
    width, height = snakemake.params.field_arcmin
    catalogue = vstack([Table.read(p) for p in snakemake.input.catalogues])
    mag = astro["index_mag_column"]
    if len(catalogue) == 0 or mag not in catalogue.colnames:
        problem = (
            "no index built: the reference catalogue is empty"
            if len(catalogue) == 0
            else f"no index built: the reference catalogue has no column {mag}"
        ) + " (see logs/reference_catalogue_*.log)"
    else:
        try:
            scales = index_scales(width, height)
            files = build_indexes(catalogue, solver.parent, scales, mag_column=mag)
            verify_files = [files[scales.index(verify_index_scale(width, height, scales))]]
        except (RuntimeError, OSError, ValueError) as exc:
            problem = f"no index built: {exc}"
if problem:
    log.error("%s", problem)
    problem = "" if dirs else problem
write_solver_config(
    solver,
    [*dirs, solver.parent] if verify_files else dirs,
    cpulimit=astro["cpulimit"],
    problem=problem,
)
# Pass 2 verifies with the densest built index only (plus any given folders).
write_solver_config(
    verifier, dirs, cpulimit=astro["cpulimit"], index_files=verify_files, problem=problem
)
log.info("solver configuration %s with index folders %s", solver, dirs)
log.info("pass-2 configuration %s with index files %s and folders %s", verifier, verify_files, dirs)
