# Snakemake adapter: scan the raw night and write the inventory table and its HTML summary.
from aifa_steps.inventory import build_inventory, inventory_html
from aifa_steps.runlog import log_to_file

log_to_file(snakemake.log[0])
table = build_inventory(snakemake.input[0], snakemake.config)
table.write(snakemake.output.table, overwrite=True)
with open(snakemake.output.html, "w") as fh:
    fh.write(inventory_html(table))
