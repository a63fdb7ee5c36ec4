# Snakemake adapter: extract the reference catalogue around one target.
from aifa_steps.refcat import load_reference_catalogue, select_around
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
cfg = snakemake.params.refcat
ra, dec = snakemake.params.centre
if cfg.get("source", "vizier") != "file":
    raise NotImplementedError(
        "reference_catalogue.source 'vizier' is not available yet: use source: file with a "
        "local catalogue in ATLAS-RefCat2 columns"
    )
table = load_reference_catalogue(snakemake.input[0], cfg.get("columns"))
extract = select_around(table, ra, dec, cfg["radius_deg"])
extract.meta["source"] = str(snakemake.input[0])
extract.meta["centre"] = [ra, dec]
extract.write(snakemake.output[0], overwrite=True)
log.info(
    "%d of %d reference stars within %s deg of %.5f %+.5f",
    len(extract),
    len(table),
    cfg["radius_deg"],
    ra,
    dec,
)
