# Snakemake adapter: scan the raw night and write the inventory table and its HTML summary.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from aifa_steps.core.atomic import write_table, write_text
from aifa_steps.core.runlog import log_to_file
from aifa_steps.inventory.report import inventory_html
from aifa_steps.inventory.table import build_inventory
from aifa_steps.summary.checks import config_warnings

log = log_to_file(snakemake.log[0])
table = build_inventory(snakemake.params.raw_dir, snakemake.config, raise_fatal=False)
for warning in config_warnings(snakemake.config, table):
    log.warning("%s", warning)
write_table(table, snakemake.output.table)
write_text(snakemake.output.html, inventory_html(table))
