"""Plan, render and write a whole simulated night with its truth."""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits
from astropy.table import Table

from aifa_steps.core.observing import (
    Site,
    bjd_tdb,
)
from aifa_steps.products.transit_model import TransitModel

from .detector import DetectorTruth, make_detector, read_out
from .headers import nina_header
from .optics import make_wcs, wcs_header
from .plan import FramePlan, plan_night, site_of
from .presets import Preset
from .render import add_moffat_stars
from .sky import make_catalogue, make_refcat

__all__ = ["FramePlan", "plan_night", "simulate_night", "night_config"]


_STATE: dict = {}  # per worker process: what every frame needs


def _init_worker(state: dict) -> None:
    _STATE.update(state)


def _frame_wcs(plan: FramePlan, preset: Preset):
    inst = preset.instrument
    return make_wcs(
        preset.shape,
        plan.ra_axis,
        plan.dec_axis,
        inst.pixel_scale,
        plan.rotation_deg,
        k3=inst.distortion_k3,
        k2=(2e-9, -1.5e-9),
    )


def _star_fluxes(
    plan: FramePlan,
    stars: Table,
    transit: TransitModel,
    host_id: int,
    rng: np.random.Generator,
    site: Site,
    tr_ra: float,
    tr_dec: float,
) -> np.ndarray:
    mags = np.asarray(stars[plan.filter], dtype=float)
    flux = 10.0 ** (-0.4 * (mags - plan.zeropoint))
    mid = plan.mjd + plan.exptime / 2.0 / 86400.0
    var = np.asarray(stars["variable"], dtype=bool)
    if var.any():
        phase = (
            2
            * np.pi
            * (
                (mid - 60900.0) / np.asarray(stars["var_period_days"][var])
                + np.asarray(stars["var_phase"][var])
            )
        )
        flux[var] *= 1.0 + np.asarray(stars["var_amplitude"][var]) * np.sin(phase)
    host = np.asarray(stars["id"]) == host_id
    if host.any():
        flux[host] *= transit.flux([bjd_tdb(mid, tr_ra, tr_dec, site)])[0]
    flux *= 1.0 + plan.scintillation * rng.standard_normal(len(flux))
    return flux


def expected_light(
    plan: FramePlan,
    preset: Preset,
    catalogue: Table,
    transit: TransitModel,
    host_id: int,
    rng: np.random.Generator,
):
    """The noiseless light of a science frame before the flat field (a calibrated frame's mean).

    ``rng`` supplies the scintillation of each star, so the same generator state gives the same
    star fluxes as the rendered frame.

    Returns
    -------
    light : numpy.ndarray
        Sky and stars in ADU per pixel (float32).
    wcs : astropy.wcs.WCS
        The frame's true WCS.
    """
    inst = preset.instrument
    ny, nx = preset.shape
    w = _frame_wcs(plan, preset)
    # Pre-select by angular distance, then by pixel position.
    cosd = np.cos(np.radians(plan.dec_axis))
    dra = (np.asarray(catalogue["ra"]) - plan.ra_axis + 180.0) % 360.0 - 180.0
    sep = np.hypot(dra * cosd, np.asarray(catalogue["dec"]) - plan.dec_axis) * 3600.0
    radius = 0.5 * np.hypot(nx, ny) * inst.pixel_scale + 300.0
    near = catalogue[sep < radius]
    x, y = w.all_world2pix(np.asarray(near["ra"]), np.asarray(near["dec"]), 0)
    inside = (x > -200) & (x < nx + 200) & (y > -200) & (y < ny + 200)
    near, x, y = near[inside], x[inside], y[inside]
    flux = _star_fluxes(
        plan, near, transit, host_id, rng, site_of(preset), preset.transit.ra, preset.transit.dec
    )
    yy = (np.arange(ny, dtype=np.float32)[:, None] - (ny - 1) / 2.0) / 3194.0
    xx = (np.arange(nx, dtype=np.float32)[None, :] - (nx - 1) / 2.0) / 4788.0
    gx, gy = plan.sky_gradient
    light = (plan.sky_adu * (1.0 + gx * xx + gy * yy)).astype(np.float32)
    add_moffat_stars(light, x, y, flux, plan.fwhm_arcsec / inst.pixel_scale, inst.psf_beta)
    return light, w


def render_light(
    plan: FramePlan,
    preset: Preset,
    det: DetectorTruth,
    catalogue: Table,
    transit: TransitModel,
    host_id: int,
    rng: np.random.Generator,
):
    """Render one science frame.

    Returns
    -------
    data : numpy.ndarray
        uint16 raw frame.
    wcs : astropy.wcs.WCS
        The frame's true WCS.
    """
    light, w = expected_light(plan, preset, catalogue, transit, host_id, rng)
    light *= det.flats[plan.filter]
    return read_out(rng, light, plan.exptime, det, preset.instrument), w


def render_frame(plan: FramePlan) -> np.ndarray:
    """Render any raw frame from the worker state; return the uint16 data."""
    preset: Preset = _STATE["preset"]
    det: DetectorTruth = _STATE["detector"]
    inst = preset.instrument
    rng = np.random.default_rng(plan.seed)
    if plan.imagetyp == "LIGHT":
        data, _ = render_light(
            plan, preset, det, _STATE["catalogue"], _STATE["transit"], _STATE["host_id"], rng
        )
        return data
    if plan.imagetyp == "FLAT":
        light = np.float32(plan.flat_level) * det.flats[plan.filter]
        return read_out(rng, light, plan.exptime, det, inst)
    zeros = np.zeros(preset.shape, dtype=np.float32)
    return read_out(rng, zeros, plan.exptime, det, inst)


def _write_frame(plan: FramePlan) -> str:
    preset: Preset = _STATE["preset"]
    out: Path = _STATE["outdir"]
    data = render_frame(plan)
    header = nina_header(plan, preset)
    if plan.defect == "no_filter":
        del header["FILTER"]
    path = out / plan.file
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)
    if plan.defect == "corrupt":
        size = path.stat().st_size
        os.truncate(path, size // 2)
    if plan.imagetyp == "LIGHT":
        wcs_hdu = fits.PrimaryHDU(header=wcs_header(_frame_wcs(plan, preset)))
        wcs_hdu.writeto(out / "truth" / "wcs" / f"{plan.stem}.fits", overwrite=True)
    return plan.file


# ---------------------------------------------------------------------------------------------


def night_config(preset: Preset, raw_dir: str, work_dir: str, transit: TransitModel) -> dict:
    """A workflow configuration that reduces this night (see ``config/config.yaml``)."""
    inst, site, cl, tr = preset.instrument, preset.site, preset.cluster, preset.transit
    return {
        "raw_dir": raw_dir,
        "work_dir": work_dir,
        "instrument": {
            "name": inst.name,
            "gain": inst.gain,
            "read_noise": inst.read_noise,
            "pixel_scale": inst.pixel_scale,
            "saturation": inst.saturation,
            "aperture_m": inst.aperture_m,
        },
        "site": {
            "name": site.name,
            "latitude": site.latitude,
            "longitude": site.longitude,
            "elevation": site.elevation,
        },
        "targets": {
            cl.name: {"kind": "cluster", "ra": cl.ra, "dec": cl.dec, "filters": list(cl.filters)},
            tr.name: {
                "kind": "transit",
                "ra": tr.ra,
                "dec": tr.dec,
                "filters": [tr.filter],
                "ephemeris": {
                    "t0_bjd_tdb": round(transit.t0, 5),
                    "period_days": tr.period_days,
                    "duration_hours": round(transit.duration_hours, 3),
                },
            },
        },
        "reference_catalogue": {"source": "file", "path": str(Path(raw_dir) / "refcat.ecsv")},
    }


def _frames_table(plans: list[FramePlan]) -> Table:
    rows = []
    for p in plans:
        rows.append(
            {
                "file": p.file,
                "imagetyp": p.imagetyp,
                "filter": p.filter,
                "exptime": p.exptime,
                "object": p.object,
                "mjd": p.mjd,
                "airmass": p.airmass_mid,
                "seeing_arcsec": p.seeing_arcsec,
                "fwhm_arcsec": p.fwhm_arcsec,
                "zeropoint": p.zeropoint,
                "sky_adu": p.sky_adu,
                "cloudy": p.cloudy,
                "transparency": p.transparency,
                "scintillation": p.scintillation,
                "flat_level": p.flat_level,
                "pierside": p.pierside,
                "ra_axis": p.ra_axis,
                "dec_axis": p.dec_axis,
                "rotation_deg": p.rotation_deg,
                "defect": p.defect,
            }
        )
    table = Table(rows=rows)
    table["file"] = table["file"].astype("U200")
    table.meta["comments"] = [
        "airmass, zeropoint and scintillation refer to mid-exposure; mjd is the exposure start.",
        "zeropoint: a star of true magnitude m gives 10**(-0.4 (m - zeropoint)) ADU in total.",
        "sky_adu: mean sky per pixel over the exposure, before the flat field.",
    ]
    return table


def simulate_night(
    outdir: str | Path,
    preset: Preset,
    seed: int = 1,
    jobs: int = 1,
    work_dir: str | None = None,
) -> Path:
    """Simulate a raw night and its truth into ``outdir``.

    Parameters
    ----------
    outdir : str or Path
        Night folder to create (``BIAS/ DARK/ FLAT/ LIGHT/ truth/``, ``refcat.ecsv``,
        ``config.yaml``).
    preset : Preset
        What the night contains.
    seed : int
        Seed of all random numbers: the same seed gives the same night.
    jobs : int
        Worker processes for rendering.
    work_dir : str, optional
        Work folder written into the night's ``config.yaml``; default ``<outdir>_reduced``.

    Returns
    -------
    pathlib.Path
        The night folder.
    """
    out = Path(outdir).resolve()
    for sub in ("BIAS", "DARK", "FLAT", "LIGHT", "truth/wcs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    plans, transit = plan_night(preset, seed)
    bands = sorted({p.filter for p in plans if p.imagetyp in ("LIGHT", "FLAT")})
    catalogue = make_catalogue(np.random.default_rng([seed, 3]), preset)
    refcat = make_refcat(np.random.default_rng([seed, 4]), catalogue, preset.refcat_limit_r)
    det = make_detector(
        np.random.default_rng([seed, 5]), preset.shape, preset.instrument, tuple(bands)
    )
    host_id = int(catalogue["id"][catalogue["role"] == "target"][0])

    state = {
        "preset": preset,
        "detector": det,
        "catalogue": catalogue,
        "transit": transit,
        "host_id": host_id,
        "outdir": out,
    }
    if jobs > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(state,)) as pool:
            for _ in pool.imap_unordered(_write_frame, plans, chunksize=2):
                pass
    else:
        _init_worker(state)
        for plan in plans:
            _write_frame(plan)

    truth = out / "truth"
    catalogue.write(truth / "stars.ecsv", overwrite=True)
    refcat.write(out / "refcat.ecsv", overwrite=True)
    _frames_table(plans).write(truth / "frames.ecsv", overwrite=True)
    fits.PrimaryHDU(det.bias).writeto(truth / "bias.fits", overwrite=True)
    fits.PrimaryHDU(det.dark_rate).writeto(truth / "dark_rate.fits", overwrite=True)
    fits.PrimaryHDU(det.hot_pixels).writeto(truth / "hot_pixels.fits", overwrite=True)
    for band, flat in det.flats.items():
        fits.PrimaryHDU(flat).writeto(truth / f"flat_{band}.fits", overwrite=True)
    tr = preset.transit
    transit_truth = {
        "star_id": host_id,
        "object": tr.name,
        "filter": tr.filter,
        "t0_bjd_tdb": transit.t0,
        "depth": transit.depth,
        "duration_hours": transit.duration_hours,
        "period_days": transit.period_days,
        "rp_rs": transit.rp_rs,
        "a_rs": transit.a_rs,
        "inclination_deg": transit.inclination_deg,
        "impact_parameter": transit.impact_parameter,
        "limb_darkening_law": "quadratic",
        "limb_darkening": list(transit.limb_darkening),
    }
    (truth / "transit.json").write_text(json.dumps(transit_truth, indent=2) + "\n")
    preset_dict = asdict(preset)
    (truth / "preset.json").write_text(
        json.dumps({"seed": seed, **preset_dict}, indent=2, default=list) + "\n"
    )
    work = work_dir or str(out.parent / f"{out.name}_reduced")
    cfg = night_config(preset, str(out), work, transit)
    header = (
        f"# Workflow configuration for the simulated night '{preset.name}' (seed {seed}).\n"
        "# Reduce it with: snakemake --cores 2 --configfile <this file>\n"
    )
    (out / "config.yaml").write_text(header + yaml.safe_dump(cfg, sort_keys=False))
    return out
