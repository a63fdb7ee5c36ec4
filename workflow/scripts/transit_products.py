# Snakemake adapter: differential light curve and transit fit of one time-series target.
from astropy.table import Table

from aifa_steps.core.atomic import write_json, write_table
from aifa_steps.core.runlog import log_to_file
from aifa_steps.photometry.frame import usable_photometry
from aifa_steps.products.lightcurve import (
    ComparisonParameters,
    lightcurve_figure,
    transit_light_curve,
)

log = log_to_file(snakemake.log[0])
target = snakemake.params.target
name = snakemake.params.name
ephemeris = target.get("ephemeris")
if not ephemeris or "t0_bjd_tdb" not in ephemeris or "period_days" not in ephemeris:
    raise ValueError(
        f"targets.{name}.ephemeris needs t0_bjd_tdb and period_days for the transit fit"
    )
params = ComparisonParameters(
    pinned=list(target.get("comparison_stars", [])),
    excluded=list(target.get("exclude_stars", [])),
    aperture_m=float(snakemake.params.aperture_m),
    elevation_m=float(snakemake.params.elevation_m),
)
result = transit_light_curve(
    usable_photometry([Table.read(p) for p in snakemake.input.tables]),
    Table.read(snakemake.input.reference),
    (float(target["ra"]), float(target["dec"])),
    ephemeris,
    params,
    limb_darkening=tuple(target.get("limb_darkening", (0.45, 0.2))),
    depth_guess=float(target.get("depth_guess", 0.01)),
    detrend=list(target.get("detrend", ["airmass"])),
)
for note in result["notes"]:
    log.info("%s", note)
result["table"].meta["OBJECT"] = name
write_table(result["table"], snakemake.output.table)
write_table(result["comparisons"], snakemake.output.comparisons)
fit = result["fit"].as_dict()
fit.update(
    aperture_arcsec=result["aperture"],
    aperture=result["aperture_key"],
    aperture_rms=result["apertures"],
    baseline_terms=["constant", *result["table"].meta["DETREND"]],
)
write_json(snakemake.output.fit, fit)
lightcurve_figure(result, snakemake.output.figure, f"{name}: transit light curve", ephemeris)
log.info("%s: %s", name, fit)
