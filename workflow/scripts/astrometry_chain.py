# Snakemake adapter: one target's frames get their starting WCS (solve-field's, or handed on
# from a solved neighbour by asterism matching), and the stars of one solved frame become the
# reference of a night without a reference catalogue.
from astropy.io import fits

from aifa_steps.astrometry.chain import (
    chain_table,
    propagate_wcs,
    read_corr,
    read_sources,
    solve_source_list,
    target_stars,
)
from aifa_steps.astrometry.solve import read_solution
from aifa_steps.core.atomic import write_table
from aifa_steps.core.failures import fits_failure
from aifa_steps.core.frames import read_ccd
from aifa_steps.core.runlog import log_to_file
from aifa_steps.inventory.headers import celestial_wcs
from aifa_steps.inventory.rawio import read_raw_header

log = log_to_file(snakemake.log[0])
inp, out, astro = snakemake.input, snakemake.output, snakemake.params.astro
scale = snakemake.params.pixel_scale
frames = snakemake.params.frames
stems = [f["stem"] for f in frames]
path = {
    kind: dict(zip(stems, getattr(inp, kind), strict=True))
    for kind in ("frames", "wcs", "corr", "xyls")
}
usable = [s for s in stems if fits_failure(path["frames"][s]) is None]
wanted = {f["stem"]: f["solve"] == "yes" for f in frames}
sources = {s: read_sources(path["xyls"][s]) for s in usable}
solutions = {s: read_solution(path["wcs"][s]) for s in usable if wanted[s]}
corrs = {s: read_corr(path["corr"][s]) for s, w in solutions.items() if w is not None}
corrs = {s: c for s, c in corrs.items() if c is not None}
shape = (0, 0)
if usable:
    header = fits.getheader(path["frames"][usable[0]])
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
hints = {f["stem"]: f["hint"] for f in frames}


def solve(stem):
    wcs, corr = solve_source_list(
        path["frames"][stem],
        path["xyls"][stem],
        inp.solver,
        inp.verifier,
        scale,
        shape,
        hints[stem],
        astro["scale_tolerance"],
        astro["search_radius_deg"],
        astro["sip_order"],
        astro["cpulimit"],
    )
    if corr is not None:
        corrs[stem] = corr
    return wcs


def read_frame(stem):
    ccd = read_ccd(path["frames"][stem])
    return ccd.data, ccd.mask


header_solutions = {}
if astro.get("header_wcs"):
    for f in frames:
        if f["stem"] in usable:
            trim = str(fits.getheader(path["frames"][f["stem"]]).get("TRIMMED", ""))
            header_solutions[f["stem"]] = celestial_wcs(read_raw_header(f["path"])[0], trim)

results = propagate_wcs(
    usable,
    [f["mjd"] for f in frames if f["stem"] in usable],
    sources,
    solutions,
    shape,
    scale,
    astro["scale_tolerance"],
    astro["sip_order"],
    solve=solve,
    max_solves=astro["max_extra_solves"],
    header_solutions=header_solutions,
)
for r in results:
    log.info("%s: %s %s %s", r.stem, r.method, r.reference, r.reason)
write_table(chain_table(results, shape), out.frames)
write_table(target_stars(results, corrs, sources, read_frame, astro["sip_order"]), out.stars)
