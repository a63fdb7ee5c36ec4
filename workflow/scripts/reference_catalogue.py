# Snakemake adapter: extract the reference catalogue around one target.
from pathlib import Path

from aifa_steps.refcat import (
    REFCAT2_VIZIER,
    fetch_refcat2,
    load_reference_catalogue,
    select_around,
)
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
cfg = snakemake.params.refcat
ra, dec = snakemake.params.centre
if cfg.get("source", "vizier") == "file":
    table = load_reference_catalogue(snakemake.input[0], cfg.get("columns"))
    extract = select_around(table, ra, dec, cfg["radius_deg"])
    source = str(snakemake.input[0])
else:
    name = f"{snakemake.wildcards.object}_{cfg['radius_deg']:g}deg.ecsv"
    cache = Path(snakemake.params.cache_dir) / name
    try:
        extract = fetch_refcat2(ra, dec, cfg["radius_deg"], cache)
        source = f"VizieR {REFCAT2_VIZIER} (cache {cache})"
    except ConnectionError as exc:
        if not cfg.get("path"):
            raise
        log.warning("%s; falling back to the local catalogue %s", exc, cfg["path"])
        local = load_reference_catalogue(cfg["path"], cfg.get("columns"))
        extract = select_around(local, ra, dec, cfg["radius_deg"])
        source = str(cfg["path"])
    table = extract
extract.meta["source"] = source
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
