"""The simulated sky: field stars, an open cluster, a transit host, variables, a reference list.

Magnitudes are true in-band AB magnitudes above the atmosphere in the g, r, i bands of the
camera's filters (the simulated filters have no colour term against the reference catalogue).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table, vstack

from .presets import ClusterSpec, Preset, TransitSpec

__all__ = [
    "locus_ri",
    "field_stars",
    "cluster_members",
    "transit_field",
    "cluster_field",
    "make_catalogue",
    "make_refcat",
    "offset_radec",
]

# Main-sequence colour (g - i, unreddened) against absolute r magnitude.
_MS_ABS_R = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
_MS_GI = np.array([-0.55, -0.35, -0.10, 0.15, 0.40, 0.60, 0.85, 1.15, 1.55, 1.95, 2.35, 2.70])
# Subgiant and red-giant branch from the turn-off, relative to the turn-off (d M_r, g - i).
_GIANT_TRACK = np.array(
    [[0.0, 0.15], [0.3, 0.35], [0.6, 0.70], [0.8, 1.00], [-0.5, 1.25], [-2.0, 1.55], [-3.5, 1.95]]
)
# Extinction per band relative to A_V (R_V = 3.1).
_EXT_PER_AV = {"g": 1.20, "r": 0.87, "i": 0.67}


def locus_ri(gr: np.ndarray) -> np.ndarray:
    """Stellar-locus r - i colour for a g - r colour (a two-piece linear fit to SDSS stars)."""
    gr = np.asarray(gr, dtype=float)
    return 0.40 * gr - 0.05 + 2.0 * np.clip(gr - 1.3, 0.0, None)


def _gr_from_gi(gi: np.ndarray) -> np.ndarray:
    grid = np.linspace(-0.6, 2.2, 561)
    return np.interp(gi, grid + locus_ri(grid), grid)


def offset_radec(
    ra0: float, dec0: float, dx_arcsec: np.ndarray, dy_arcsec: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions at tangent-plane offsets (east, north, arcsec) from (ra0, dec0), in degrees."""
    xi = np.radians(np.asarray(dx_arcsec, dtype=float) / 3600.0)
    eta = np.radians(np.asarray(dy_arcsec, dtype=float) / 3600.0)
    a0, d0 = np.radians(ra0), np.radians(dec0)
    denom = np.cos(d0) - eta * np.sin(d0)
    ra = a0 + np.arctan2(xi, denom)
    dec = np.arctan2(np.sin(d0) + eta * np.cos(d0), np.hypot(xi, denom))
    return np.mod(np.degrees(ra), 360.0), np.degrees(dec)


def _random_in_disc(rng: np.random.Generator, n: int, radius_arcsec: float):
    r = radius_arcsec * np.sqrt(rng.random(n))
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    return r * np.cos(phi), r * np.sin(phi)


def _power_law_mags(
    rng: np.random.Generator, n: int, m_bright: float, m_faint: float, slope: float = 0.28
) -> np.ndarray:
    lo, hi = 10.0 ** (slope * m_bright), 10.0 ** (slope * m_faint)
    return np.log10(lo + rng.random(n) * (hi - lo)) / slope


def field_stars(
    rng: np.random.Generator,
    ra0: float,
    dec0: float,
    radius_arcsec: float,
    density_r16: float,
    m_bright: float = 7.5,
    m_faint: float = 21.0,
    slope: float = 0.28,
) -> Table:
    """Field stars in a disc, with counts rising as 10**(slope * r).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random numbers.
    ra0, dec0 : float
        Centre of the disc in degrees.
    radius_arcsec : float
        Radius of the disc.
    density_r16 : float
        Stars per square degree brighter than r = 16.
    m_bright, m_faint : float
        Magnitude range in r.
    slope : float
        Logarithmic slope of the cumulative counts.

    Returns
    -------
    astropy.table.Table
        Columns ``ra``, ``dec``, ``g``, ``r``, ``i``.
    """
    area_deg2 = np.pi * (radius_arcsec / 3600.0) ** 2
    expected = (
        density_r16
        * area_deg2
        * (10.0 ** (slope * (m_faint - 16.0)) - 10.0 ** (slope * (m_bright - 16.0)))
    )
    n = int(rng.poisson(expected))
    r = _power_law_mags(rng, n, m_bright, m_faint, slope)
    gr = np.clip(rng.normal(0.60 + 0.04 * (r - 16.0), 0.30), -0.3, 1.6)
    ri = locus_ri(gr) + rng.normal(0.0, 0.03, n)
    dx, dy = _random_in_disc(rng, n, radius_arcsec)
    ra, dec = offset_radec(ra0, dec0, dx, dy)
    return Table({"ra": ra, "dec": dec, "g": r + gr, "r": r, "i": r - ri})


def cluster_members(rng: np.random.Generator, spec: ClusterSpec, av: float | None = None) -> Table:
    """Members of an open cluster: Plummer profile, main sequence with binaries, giants, clump.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random numbers.
    spec : ClusterSpec
        Position, distance, reddening, turn-off and size of the cluster.
    av : float, optional
        Visual extinction; derived from ``spec.extinction_r`` when not given.

    Returns
    -------
    astropy.table.Table
        Columns ``ra``, ``dec``, ``g``, ``r``, ``i``.
    """
    av = spec.extinction_r / _EXT_PER_AV["r"] if av is None else av
    n = spec.n_members
    kind = rng.choice(3, size=n, p=[0.94, 0.045, 0.015])  # 0 MS, 1 subgiant/RGB, 2 clump
    abs_r = np.empty(n)
    gi0 = np.empty(n)
    ms = kind == 0
    # Luminosity function rising towards faint stars, from the turn-off down to M_r = 10.
    abs_r[ms] = _power_law_mags(rng, ms.sum(), spec.turnoff_abs_r, 10.0, slope=0.12)
    gi0[ms] = np.interp(abs_r[ms], _MS_ABS_R, _MS_GI)
    binary = ms & (rng.random(n) < 0.25)
    abs_r[binary] -= rng.uniform(0.0, 0.75, binary.sum())
    giant = kind == 1
    s = rng.random(giant.sum()) * (len(_GIANT_TRACK) - 1)
    k = np.floor(s).astype(int)
    f = s - k
    track = _GIANT_TRACK
    abs_r[giant] = spec.turnoff_abs_r + track[k, 0] * (1 - f) + track[k + 1, 0] * f
    gi0[giant] = track[k, 1] * (1 - f) + track[k + 1, 1] * f
    clump = kind == 2
    abs_r[clump] = spec.turnoff_abs_r - 1.4 + rng.normal(0.0, 0.1, clump.sum())
    gi0[clump] = 1.15 + rng.normal(0.0, 0.03, clump.sum())
    gi0 += rng.normal(0.0, 0.01, n)  # differential reddening
    gr0 = _gr_from_gi(gi0)
    r_app = abs_r + spec.distance_modulus + av * _EXT_PER_AV["r"]
    g_app = r_app + gr0 + av * (_EXT_PER_AV["g"] - _EXT_PER_AV["r"])
    i_app = r_app - (gi0 - gr0) - av * (_EXT_PER_AV["r"] - _EXT_PER_AV["i"])
    # Plummer surface density, truncated at the tidal radius.
    a = spec.core_radius_arcmin * 60.0
    rt = spec.tidal_radius_arcmin * 60.0
    umax = rt**2 / (rt**2 + a**2)
    uu = rng.random(n) * umax
    radius = a * np.sqrt(uu / (1.0 - uu))
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    ra, dec = offset_radec(spec.ra, spec.dec, radius * np.cos(phi), radius * np.sin(phi))
    return Table({"ra": ra, "dec": dec, "g": g_app, "r": r_app, "i": i_app})


def _field_radius_arcsec(preset: Preset, margin_arcsec: float) -> float:
    ny, nx = preset.shape
    half_diag = 0.5 * np.hypot(nx, ny) * preset.instrument.pixel_scale
    return half_diag + margin_arcsec


def _with_meta(table: Table, role: str) -> Table:
    n = len(table)
    table["variable"] = np.zeros(n, dtype=bool)
    table["role"] = np.full(n, role, dtype="U8")
    table["var_amplitude"] = np.zeros(n)
    table["var_period_days"] = np.zeros(n)
    table["var_phase"] = np.zeros(n)
    return table


def cluster_field(rng: np.random.Generator, preset: Preset) -> Table:
    """Field stars and members around the cluster target."""
    spec = preset.cluster
    radius = _field_radius_arcsec(preset, 3.0 * spec.dither_arcsec + 60.0)
    field = _with_meta(
        field_stars(
            rng, spec.ra, spec.dec, radius, spec.field_density_r16, m_faint=preset.faintest_mag
        ),
        "field",
    )
    members = cluster_members(rng, spec)
    dx = (members["ra"] - spec.ra) * np.cos(np.radians(spec.dec)) * 3600.0
    dy = (members["dec"] - spec.dec) * 3600.0
    keep = (np.hypot(dx, dy) < radius) & (members["r"] < preset.faintest_mag)
    return vstack([field, _with_meta(members[keep], "cluster")])


def transit_field(rng: np.random.Generator, preset: Preset) -> Table:
    """Field stars around the transit host, the host itself, variables and one bright star."""
    spec: TransitSpec = preset.transit
    drift = spec.drift_arcsec_per_hour * spec.window_hours
    radius = _field_radius_arcsec(preset, drift + 60.0)
    field = _with_meta(
        field_stars(
            rng, spec.ra, spec.dec, radius, spec.field_density_r16, m_faint=preset.faintest_mag
        ),
        "field",
    )
    # Keep the host's immediate surroundings clean of stars brighter than the host + 4 mag.
    dx = (field["ra"] - spec.ra) * np.cos(np.radians(spec.dec)) * 3600.0
    dy = (field["dec"] - spec.dec) * 3600.0
    crowding = (np.hypot(dx, dy) < 12.0) & (field["r"] < spec.host_r + 4.0)
    field = field[~crowding]
    host_ri = float(locus_ri(spec.host_gr))
    host = _with_meta(
        Table(
            {
                "ra": [spec.ra],
                "dec": [spec.dec],
                "g": [spec.host_r + spec.host_gr],
                "r": [spec.host_r],
                "i": [spec.host_r - host_ri],
            }
        ),
        "target",
    )
    # Variables among the brighter stars near the host, so that they tempt a comparison choice.
    ny, nx = preset.shape
    half = 0.35 * min(nx, ny) * preset.instrument.pixel_scale
    n_var = spec.n_variables
    dxv = rng.uniform(-half, half, n_var)
    dyv = rng.uniform(-half, half, n_var)
    far = np.hypot(dxv, dyv) > 30.0
    dxv[~far] += np.sign(dxv[~far] + 1e-9) * 40.0
    rav, decv = offset_radec(spec.ra, spec.dec, dxv, dyv)
    rv = rng.uniform(spec.host_r - 0.5, spec.host_r + 1.5, n_var)
    grv = rng.uniform(0.4, 1.0, n_var)
    variables = _with_meta(
        Table({"ra": rav, "dec": decv, "g": rv + grv, "r": rv, "i": rv - locus_ri(grv)}),
        "field",
    )
    variables["variable"] = True
    variables["var_amplitude"] = rng.uniform(0.01, 0.06, n_var)
    variables["var_period_days"] = rng.uniform(0.08, 0.6, n_var)
    variables["var_phase"] = rng.uniform(0.0, 1.0, n_var)
    return vstack([host, variables, field])


def _bright_star(rng: np.random.Generator, preset: Preset, ra0: float, dec0: float) -> Table:
    """One saturated star in the frame, away from the centre."""
    ny, nx = preset.shape
    scale = preset.instrument.pixel_scale
    dx = rng.choice([-1, 1]) * rng.uniform(0.15, 0.3) * nx * scale
    dy = rng.choice([-1, 1]) * rng.uniform(0.1, 0.3) * ny * scale
    ra, dec = offset_radec(ra0, dec0, [dx], [dy])
    r = rng.uniform(9.0, 10.0)
    return _with_meta(
        Table({"ra": ra, "dec": dec, "g": [r + 0.5], "r": [r], "i": [r - 0.17]}), "field"
    )


def make_catalogue(rng: np.random.Generator, preset: Preset) -> Table:
    """The whole simulated sky of the night, with a running ``id``.

    Returns
    -------
    astropy.table.Table
        Columns ``id``, ``ra``, ``dec``, ``g``, ``r``, ``i``, ``variable``, ``role`` and the
        sinusoidal variability parameters ``var_amplitude`` (fractional), ``var_period_days``,
        ``var_phase``.
    """
    parts = [
        transit_field(rng, preset),
        _bright_star(rng, preset, preset.transit.ra, preset.transit.dec),
        cluster_field(rng, preset),
        _bright_star(rng, preset, preset.cluster.ra, preset.cluster.dec),
    ]
    cat = vstack(parts)
    cat.add_column(np.arange(1, len(cat) + 1), name="id", index=0)
    for band in "gri":
        cat[band] = np.round(cat[band], 5)
    return cat


def make_refcat(rng: np.random.Generator, catalogue: Table, limit_r: float) -> Table:
    """A reference catalogue in the style of ATLAS-RefCat2 as VizieR serves it.

    Stars brighter than ``limit_r`` with magnitudes scattered by their quoted errors
    and positions scattered by 15 mas (Gaia-like).
    """
    sel = catalogue[catalogue["r"] <= limit_r]
    n = len(sel)
    dec = sel["dec"] + rng.normal(0.0, 0.015 / 3600.0, n)
    ra = sel["ra"] + rng.normal(0.0, 0.015 / 3600.0, n) / np.cos(np.radians(sel["dec"]))
    out = Table()
    out["RA_ICRS"] = np.round(np.asarray(ra), 8)
    out["DE_ICRS"] = np.round(np.asarray(dec), 8)
    for band in "gri":
        mag = np.asarray(sel[band])
        err = np.sqrt(0.004**2 + (0.01 * 10.0 ** (0.4 * (mag - 18.0))) ** 2)
        out[f"{band}mag"] = np.round(mag + rng.normal(0.0, err), 3)
        out[f"e_{band}mag"] = np.round(err, 3)
    for col in out.colnames:
        unit = "deg" if col.endswith("ICRS") else "mag"
        out[col].unit = unit
    out.meta["description"] = (
        "Simulated ATLAS-RefCat2 extract (VizieR J/ApJ/867/105/refcat2 columns)"
    )
    return out
