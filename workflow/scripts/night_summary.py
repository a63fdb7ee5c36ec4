# Snakemake adapter: the night's status table (every raw file and what happened to it) and the
# summary page of the report.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from pathlib import Path

from astropy.table import Table

from aifa_steps.core.atomic import write_table, write_text
from aifa_steps.core.runlog import log_to_file
from aifa_steps.summary.status import summarise_night

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
status, page = summarise_night(
    Table.read(inp.inventory),
    Table.read(inp.astrometry),
    Table.read(inp.zeropoints[0]) if inp.zeropoints else None,
    [Table.read(p) for p in inp.flats],
    {Path(p).stem: Table.read(p) for p in inp.catalogues},
    snakemake.params.targets,
)
write_table(status, out.table)
write_text(out.html, page)
for note in status.meta["photometry"]:
    log.warning("%s", note)
for warning in status.meta["warnings"]:
    log.warning("%s", warning)
(log.error if status.meta["fatal"] else log.info)("%s", status.meta["verdict"])
