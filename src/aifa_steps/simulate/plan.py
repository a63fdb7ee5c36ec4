"""The plan of a simulated night: which frames, when, where the telescope points, the transit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.time import Time

from aifa_steps.core.observing import (
    Site,
    airmass,
    altitude,
    bjd_tdb,
    hour_angle,
    scintillation_noise,
)
from aifa_steps.products.transit_model import TransitModel

from .presets import Preset
from .sky import offset_radec

__all__ = ["FramePlan", "plan_night", "site_of"]

_FLAT_PANEL_RATE = {"g": 9000.0, "r": 12000.0, "i": 10000.0}  # ADU/s at the panel
_OVERHEAD_S = 8.0


@dataclass
class FramePlan:
    """Everything needed to render one raw frame, and its truth."""

    imagetyp: str
    file: str
    exptime: float
    mjd: float
    filter: str = ""
    object: str = ""
    seed: int = 0
    ccd_temp: float = -10.0
    focus_position: int = 15200
    focus_temp: float = 8.0
    defect: str = "none"
    flat_level: float = float("nan")
    # Light frames only.
    ra_axis: float = float("nan")
    dec_axis: float = float("nan")
    ra_header: float = float("nan")
    dec_header: float = float("nan")
    rotation_deg: float = float("nan")
    pierside: str = ""
    altitude: float = float("nan")
    hour_angle: float = float("nan")
    airmass: float = float("nan")
    airmass_mid: float = float("nan")
    seeing_arcsec: float = float("nan")
    fwhm_arcsec: float = float("nan")
    transparency: float = float("nan")
    zeropoint: float = float("nan")
    sky_adu: float = float("nan")
    sky_gradient: tuple = (0.0, 0.0)
    scintillation: float = float("nan")
    cloudy: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """File name without folder and extension."""
        return Path(self.file).stem


def site_of(preset: Preset) -> Site:
    """The observatory of a preset as an `aifa_steps.core.observing.Site`."""
    s = preset.site
    return Site(s.name, s.latitude, s.longitude, s.elevation)


def _mjd(isot: str) -> float:
    return float(Time(isot, format="isot", scale="utc").mjd)


def _stamp(mjd: float) -> str:
    return Time(mjd, format="mjd", scale="utc").strftime("%Y-%m-%d_%H-%M-%S")


def _scintillation(inst, site, x: float, exptime: float) -> float:
    """Young's (1967) scintillation noise, relative flux rms."""
    return float(scintillation_noise(inst.aperture_m, site.elevation, x, exptime))


def _light_plan(
    preset,
    rng,
    site,
    *,
    name,
    ra0,
    dec0,
    dx,
    dy,
    mjd,
    band,
    exptime,
    pointing_error,
    defocus,
    seeing_phase,
    t_first,
    cloudy=False,
):
    inst = preset.instrument
    ra_axis, dec_axis = offset_radec(ra0, dec0, [dx], [dy])
    ra_axis, dec_axis = float(ra_axis[0]), float(dec_axis[0])
    ha = float(hour_angle(mjd, ra_axis, site))
    pierside = "West" if ha < 0 else "East"
    rotation = 0.6 + (180.0 if pierside == "East" else 0.0)
    mid = mjd + exptime / 2.0 / 86400.0
    x_start = float(airmass(mjd, ra_axis, dec_axis, site))
    x_mid = float(airmass(mid, ra_axis, dec_axis, site))
    hours = (mjd - t_first) * 24.0
    seeing_zenith = preset.site.seeing_arcsec * (
        1.0 + 0.15 * np.sin(2 * np.pi * hours / 2.7 + seeing_phase)
    )
    seeing = float(seeing_zenith * np.exp(rng.normal(0.0, 0.04)) * x_mid**0.6)
    fwhm = float(np.hypot(seeing, defocus))
    transparency = 1.0 - 0.03 * abs(np.sin(2 * np.pi * hours / 1.9 + seeing_phase)) * rng.uniform(
        0.5, 1.0
    )
    if cloudy:
        transparency = 0.03
    zp = (
        inst.zp_1s[band]
        + 2.5 * np.log10(exptime)
        - inst.extinction[band] * x_mid
        + 2.5 * np.log10(transparency)
    )
    sky_rate = 10.0 ** (-0.4 * (inst.sky_mag[band] - inst.zp_1s[band])) * inst.pixel_scale**2
    sky = sky_rate * exptime * (1.0 + 0.3 * (x_mid - 1.0)) * (1.5 if cloudy else 1.0)
    ra_hdr, dec_hdr = offset_radec(
        ra_axis,
        dec_axis,
        [pointing_error[0] + rng.normal(0, 2.0)],
        [pointing_error[1] + rng.normal(0, 2.0)],
    )
    stamp = _stamp(mjd)
    return FramePlan(
        imagetyp="LIGHT",
        file=f"LIGHT/{name}_{stamp}_{band}_{exptime:.2f}s_{{n:04d}}.fits",
        exptime=exptime,
        mjd=mjd,
        filter=band,
        object=name,
        ra_axis=ra_axis,
        dec_axis=dec_axis,
        ra_header=float(ra_hdr[0]),
        dec_header=float(dec_hdr[0]),
        rotation_deg=rotation,
        pierside=pierside,
        altitude=float(altitude(mjd, ra_axis, dec_axis, site)),
        hour_angle=ha,
        airmass=x_start,
        airmass_mid=x_mid,
        seeing_arcsec=seeing,
        fwhm_arcsec=fwhm,
        transparency=float(transparency),
        zeropoint=float(zp),
        sky_adu=float(sky),
        sky_gradient=(0.025, -0.015),
        scintillation=float(_scintillation(inst, preset.site, x_mid, exptime)),
        cloudy=cloudy,
        ccd_temp=round(-10.0 + rng.normal(0.0, 0.05), 2),
        focus_temp=round(9.0 - 2.0 * hours / 5.0, 2),
    )


def plan_night(preset: Preset, seed: int) -> tuple[list[FramePlan], TransitModel]:
    """Decide every frame of the night: types, times, filters, pointings and conditions.

    Returns
    -------
    plans : list of FramePlan
        In the order of observation, with file names and per-frame seeds.
    transit : TransitModel
        The true transit of the time-series target.
    """
    rng = np.random.default_rng([seed, 1])
    site = site_of(preset)
    plans: list[FramePlan] = []
    cl, tr = preset.cluster, preset.transit
    bands = tuple(dict.fromkeys(cl.filters + (tr.filter,)))

    # Flats from a panel in the evening, one series per filter, levels near flat_level.
    t = _mjd(cl.start_utc) - 2.0 / 24.0
    for band in bands:
        for _ in range(preset.n_flat):
            level = preset.flat_level * rng.uniform(0.92, 1.08)
            plans.append(_flat(band, level, t))
            t += (plans[-1].exptime + 3.0) / 86400.0
    if "saturated_flat" in preset.defects:
        plans.append(_flat(tr.filter, 1.9 * 65535, t, defect="saturated_flat"))
        t += 10.0 / 86400.0
    if "faint_flat" in preset.defects:
        plans.append(_flat(bands[0], 2500.0, t, defect="faint_flat"))

    # The cluster: dithered cycles through the filters.
    t = _mjd(cl.start_utc)
    t_first = t
    seeing_phase = rng.uniform(0, 2 * np.pi)
    err = rng.normal(0.0, 30.0, 2)
    for d in range(cl.n_dithers):
        dx, dy = (0.0, 0.0) if d == 0 else rng.normal(0.0, cl.dither_arcsec, 2)
        for band in cl.filters:
            exptime = cl.exptime[band]
            plans.append(
                _light_plan(
                    preset,
                    rng,
                    site,
                    name=cl.name,
                    ra0=cl.ra,
                    dec0=cl.dec,
                    dx=dx,
                    dy=dy,
                    mjd=t,
                    band=band,
                    exptime=exptime,
                    pointing_error=err,
                    defocus=0.0,
                    seeing_phase=seeing_phase,
                    t_first=t_first,
                )
            )
            t += (exptime + _OVERHEAD_S) / 86400.0
        t += 15.0 / 86400.0

    # The transit: a time series centred on mid-transit, with slow drift.
    t0_mjd = _mjd(tr.t0_utc)
    t0_bjd = float(bjd_tdb(t0_mjd, tr.ra, tr.dec, site))
    transit = TransitModel(
        t0_bjd, tr.period_days, tr.rp_rs, tr.a_rs, tr.inclination_deg, tuple(tr.limb_darkening)
    )
    start = t0_mjd - tr.window_hours / 2.0 / 24.0
    cadence = tr.window_hours / 24.0 / tr.n_frames
    drift_angle = rng.uniform(0, 2 * np.pi)
    err = rng.normal(0.0, 30.0, 2)
    cloudy = {int(round(f * (tr.n_frames - 1))) for f in tr.cloudy_frames}
    defect_at = {}
    if "corrupt" in preset.defects:
        defect_at[int(round(0.3 * (tr.n_frames - 1)))] = "corrupt"
    if "no_filter" in preset.defects:
        defect_at[int(round(0.8 * (tr.n_frames - 1)))] = "no_filter"
    for k in range(tr.n_frames):
        mjd = start + k * cadence
        hours = (mjd - start) * 24.0
        drift = tr.drift_arcsec_per_hour * hours
        dx = drift * np.cos(drift_angle) + rng.normal(0.0, 0.4)
        dy = drift * np.sin(drift_angle) + rng.normal(0.0, 0.4)
        plan = _light_plan(
            preset,
            rng,
            site,
            name=tr.name,
            ra0=tr.ra,
            dec0=tr.dec,
            dx=dx,
            dy=dy,
            mjd=mjd,
            band=tr.filter,
            exptime=tr.exptime,
            pointing_error=err,
            defocus=tr.defocus_arcsec,
            seeing_phase=seeing_phase,
            t_first=t_first,
            cloudy=k in cloudy,
        )
        plan.defect = defect_at.get(k, "cloudy" if k in cloudy else "none")
        plans.append(plan)
    t = start + tr.n_frames * cadence + 1.5 / 24.0

    # Biases and darks at the end of the night, with the last filter still in the wheel.
    last = tr.filter
    for _ in range(preset.n_bias):
        plans.append(
            FramePlan(
                imagetyp="BIAS",
                file=f"BIAS/BIAS_{_stamp(t)}_0.00s_{{n:04d}}.fits",
                exptime=0.0,
                mjd=t,
                filter=last,
            )
        )
        t += 3.0 / 86400.0
    for _ in range(preset.n_dark):
        e = preset.dark_exptime
        plans.append(
            FramePlan(
                imagetyp="DARK",
                file=f"DARK/DARK_{_stamp(t)}_{e:.2f}s_{{n:04d}}.fits",
                exptime=e,
                mjd=t,
                filter=last,
            )
        )
        t += (e + 3.0) / 86400.0

    counters: dict[str, int] = {}
    seeds = np.random.SeedSequence([seed, 2]).generate_state(len(plans))
    for plan, s in zip(plans, seeds, strict=True):
        counters[plan.imagetyp] = counters.get(plan.imagetyp, 0) + 1
        plan.file = plan.file.format(n=counters[plan.imagetyp])
        plan.seed = int(s)
        plan.ccd_temp = round(plan.ccd_temp, 2)
    return plans, transit


def _flat(band: str, level: float, mjd: float, defect: str = "none") -> FramePlan:
    exptime = round(level / _FLAT_PANEL_RATE[band], 2)
    return FramePlan(
        imagetyp="FLAT",
        file=f"FLAT/FLAT_{_stamp(mjd)}_{band}_{exptime:.2f}s_{{n:04d}}.fits",
        exptime=exptime,
        mjd=mjd,
        filter=band,
        flat_level=level,
        defect=defect,
    )


# ---------------------------------------------------------------------------------------------
# Rendering. Workers receive the night's shared state once through the pool initializer.
