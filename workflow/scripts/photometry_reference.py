# Snakemake adapter: detect the sources of one target on its reference frame.
from pathlib import Path

from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.frames import read_ccd
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.detection import (
    DetectionParameters,
    reference_sources,
    write_ds9_regions,
)
from aifa_steps.photometry.frame import PhotometryParameters, set_reference_apertures
from aifa_steps.photometry.measure import estimate_background
from aifa_steps.photometry.plots import detections_figure

log = log_to_file(snakemake.log[0])
inp, out, phot = snakemake.input, snakemake.output, snakemake.params.photometry
stem = Path(inp.frame).name.removesuffix(".fits")
requested = snakemake.params.requested
if requested and requested != stem:
    log.warning(
        "the configured reference frame %s of %s is not a solved frame; using %s instead",
        requested,
        snakemake.wildcards.object,
        stem,
    )
ccd = read_ccd(inp.frame)
bad = ccd.flags > 0 if ccd.flags is not None else ccd.mask
background, rms = estimate_background(
    ccd.data, bad, phot["background_box"], phot["background_filter"]
)
params = DetectionParameters.from_config(phot["detection"])
table = reference_sources(
    ccd.data,
    background,
    rms,
    ccd.wcs,
    Table.read(inp.refcat),
    mask=bad,
    uncertainty=ccd.uncertainty.array,
    params=params,
    isolation_arcsec=phot["isolation_arcsec"],
    match_radius_arcsec=snakemake.params.match_radius,
    band=str(ccd.meta.get("FILTNAME", ccd.meta.get("FILTER", "r"))),
)
table.meta.update(params.as_header())
table.meta["REFFRAME"] = (stem, "frame the sources were detected on")
table.meta["OBJECT"] = snakemake.params.name
table.meta["TARGET"] = snakemake.wildcards.object
status = Table.read(inp.status)
mine = status[(status["target"] == snakemake.wildcards.object) & status["solved"]]
radii, keys = set_reference_apertures(
    table,
    PhotometryParameters.from_config(phot, snakemake.params.saturation),
    mine["fwhm_arcsec"],
)
log.info(
    "apertures of %s: %s (%s; FWHM %.2f arcsec, median of %d frames)",
    snakemake.wildcards.object,
    ", ".join(f'{k} = {r:.2f}"' for k, r in zip(keys, radii, strict=True)),
    table.meta["APMODE"],
    table.meta["APFWHM"],
    len(mine),
)
write_table(table, out.table)
write_ds9_regions(table, out.regions, radius_arcsec=radii[0])
detections_figure(
    ccd.data - background,
    table,
    out.figure,
    f"{snakemake.params.name}: {len(table)} sources on {stem}",
)
log.info(
    "%s: %d sources on %s, %d isolated, %d in the reference catalogue",
    snakemake.wildcards.object,
    len(table),
    stem,
    int(table["isolated"].sum()),
    int((table["refcat_row"] >= 0).sum()),
)
