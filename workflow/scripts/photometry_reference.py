# Snakemake adapter: detect the sources of one target on its reference frame.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.formats import frame_stem
from aifa_steps.core.frames import read_solved
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.plots import detections_figure
from aifa_steps.photometry.reference import (
    reference_frame_warning,
    reference_summary,
    solved_seeing,
    target_reference,
    write_ds9_regions,
)
from aifa_steps.photometry.settings import DetectionParameters, PhotometryParameters

log = log_to_file(snakemake.log[0])
inp, out, target = snakemake.input, snakemake.output, snakemake.wildcards.object
stem = frame_stem(inp.frame)
warning = reference_frame_warning(snakemake.params.requested, stem, target)
if warning:
    log.warning(warning)
seeing = solved_seeing(Table.read(inp.status), target)
table, residual = target_reference(
    read_solved(inp.frame, inp.solution),
    Table.read(inp.refcat),
    stem,
    seeing,
    PhotometryParameters.from_config(snakemake.params.photometry),
    DetectionParameters.from_config(snakemake.params.detection),
    snakemake.params.isolation_arcsec,
    snakemake.params.match_radius,
    snakemake.params.name,
    target,
)
write_table(table, out.table)
write_ds9_regions(table, out.regions, radius_arcsec=table.meta["APERTURES"][0])
detections_figure(
    residual, table, out.figure, f"{snakemake.params.name}: {len(table)} sources on {stem}"
)
for line in reference_summary(table, len(seeing)):
    log.info(line)
