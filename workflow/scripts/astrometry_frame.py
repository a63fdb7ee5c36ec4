# Snakemake adapter: refine and judge one frame's solution, attach it to the calibrated frame.
from astropy.table import Table

from aifa_steps.astrometry import (
    attach_wcs,
    judge_solution,
    read_solution,
    refine_wcs,
)
from aifa_steps.calibrate import read_ccd, write_ccd
from aifa_steps.runlog import log_to_file

log = log_to_file(snakemake.log[0])
inp, out, astro = snakemake.input, snakemake.output, snakemake.params.astro
stem = snakemake.wildcards.stem
ccd = read_ccd(inp.frame)
wcs = read_solution(inp.wcs)
matched = Table(names=("x", "y", "ra", "dec", "dx", "dy", "residual_arcsec"))
failure = ""
if wcs is not None and astro["refine"]:
    refcat = Table.read(inp.refcat)
    band = str(ccd.meta.get("FILTNAME", ""))
    mag = f"{band}mag" if f"{band}mag" in refcat.colnames else astro["index_mag_column"]
    try:
        wcs, matched = refine_wcs(
            ccd.data, wcs, refcat, mask=ccd.mask, mag_column=mag, sip_degree=astro["sip_order"]
        )
    except ValueError as exc:
        failure = f"refinement failed: {exc}"
        wcs = None
elif wcs is not None:
    corr = Table.read(inp.corr)
    matched = Table(
        {
            "x": corr["field_x"] - 1,
            "y": corr["field_y"] - 1,
            "ra": corr["index_ra"],
            "dec": corr["index_dec"],
        }
    )
    px, py = wcs.all_world2pix(matched["ra"], matched["dec"], 0)
    matched["dx"], matched["dy"] = matched["x"] - px, matched["y"] - py
    matched["residual_arcsec"] = (
        matched["dx"] ** 2 + matched["dy"] ** 2
    ) ** 0.5 * snakemake.params.pixel_scale
status = judge_solution(
    stem,
    wcs,
    matched,
    snakemake.params.pixel_scale,
    astro["scale_tolerance"],
    astro["max_rms_arcsec"],
    astro["min_matches"],
    failure,
)
if status.solved:
    ccd = attach_wcs(ccd, wcs, status)
ccd.meta["ASTSOLVD"] = (status.solved, "astrometric solution found and accepted")
ccd.meta["ASTREASN"] = (status.reason[:60], "why the astrometry failed")
write_ccd(ccd, out.fits)
matched.meta["NAXIS1"], matched.meta["NAXIS2"] = ccd.shape[1], ccd.shape[0]
matched.write(out.matches, overwrite=True)
row = {**status.as_dict(), "object": str(ccd.meta.get("OBJECT", ""))}
Table(rows=[row]).write(out.status, overwrite=True)
log.info("%s", status)
