# Snakemake adapter: one target's frames get their starting WCS (solve-field's, or handed on
# from a solved neighbour by asterism matching), and the stars of one solved frame become the
# reference of a night without a reference catalogue.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from pathlib import Path

from aifa_steps.astrometry.settings import ChainSettings
from aifa_steps.astrometry.target import TargetFiles, chain_target
from aifa_steps.core.atomic import write_table
from aifa_steps.core.runlog import log_to_file

log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
frames = snakemake.params.frames
files = TargetFiles.from_lists(
    [f["stem"] for f in frames],
    {kind: getattr(inp, kind) for kind in ("frames", "wcs", "corr", "xyls")},
    inp.solver,
    inp.verifier,
    Path(snakemake.scriptdir) / "solve_field.sh",
)
chain, stars = chain_target(
    frames,
    files,
    snakemake.params.pixel_scale,
    ChainSettings.from_config(snakemake.params.astro),
)
write_table(chain, out.frames)
write_table(stars, out.stars)
