# Snakemake adapter: the night's status table (every raw file and what happened to it) and the
# summary page of the report.
from pathlib import Path

from astropy.table import Table

from aifa_steps.core.atomic import write_table, write_text
from aifa_steps.core.runlog import log_to_file
from aifa_steps.summary.night import (
    calibration_notes,
    config_warnings,
    night_status,
    night_summary_html,
    night_verdict,
    zeropoint_notes,
)

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
inventory = Table.read(inp.inventory)
flats = [Table.read(p) for p in inp.flats]
status = night_status(
    inventory,
    Table.read(inp.astrometry),
    Table.read(inp.zeropoints[0]) if inp.zeropoints else None,
    flats,
)
fatal, verdict = night_verdict(status)
warnings = config_warnings({"targets": snakemake.params.targets}, inventory)
status.meta["verdict"] = verdict
status.meta["fatal"] = fatal
status.meta["warnings"] = warnings
catalogues = {Path(p).stem: Table.read(p) for p in inp.catalogues}
zeropoints = Table.read(inp.zeropoints[0]) if inp.zeropoints else None
photometry = zeropoint_notes(zeropoints, catalogues)
status.meta["photometry"] = photometry
write_table(status, out.table)
write_text(
    out.html,
    night_summary_html(status, verdict, warnings, calibration_notes(inventory, flats), photometry),
)
for note in photometry:
    log.warning("%s", note)
for warning in warnings:
    log.warning("%s", warning)
(log.error if fatal else log.info)("%s", verdict)
