# Snakemake adapter: the night's results (summary.json, summary.html, the report's first page)
# and the conditions figure.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from astropy.table import Table

from aifa_steps.core.runlog import log_to_file
from aifa_steps.summary.conditions_figure import conditions_figure
from aifa_steps.summary.results_files import write_results_summary

log = log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
zeropoints = inp.zeropoints[0] if inp.zeropoints else None
calibrated = inp.calibrated[0] if inp.calibrated else None
summary = write_results_summary(
    inp.status,
    snakemake.params.targets,
    list(inp.products) + [out.conditions],
    snakemake.params.work_dir,
    {"json": out.json, "html": out.html, "fragment": out.fragment},
    zeropoints,
    calibrated,
)
conditions_figure(
    Table.read(calibrated) if calibrated else None,
    Table.read(zeropoints) if zeropoints else None,
    out.conditions,
)
log.info("%s", summary["verdict"])
