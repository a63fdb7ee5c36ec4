"""Where a telescope points and when: sidereal time, altitude, airmass and barycentric times.

The functions here are closed-form and need no network (no IERS downloads): the accuracy
(about a second of time in sidereal time, 0.1 per cent in airmass below airmass 3) is far
better than what photometry needs. Both the simulator and the pipeline use them, so an
airmass computed for a night without an ``AIRMASS`` keyword matches the one NINA would write.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.coordinates import EarthLocation, SkyCoord, get_body_barycentric
from astropy.time import Time, TimeDelta

__all__ = [
    "Site",
    "greenwich_mean_sidereal_time",
    "hour_angle",
    "altitude",
    "airmass_pickering",
    "airmass",
    "bjd_tdb",
    "scintillation_noise",
]


@dataclass(frozen=True)
class Site:
    """An observatory on the ground.

    Parameters
    ----------
    name : str
        Human-readable name.
    latitude, longitude : float
        Geodetic latitude and longitude in degrees (longitude positive to the east).
    elevation : float
        Height above sea level in metres.
    """

    name: str
    latitude: float
    longitude: float
    elevation: float

    @property
    def location(self) -> EarthLocation:
        """The site as an `~astropy.coordinates.EarthLocation`."""
        return EarthLocation.from_geodetic(
            self.longitude * u.deg, self.latitude * u.deg, self.elevation * u.m
        )

    @classmethod
    def from_config(cls, cfg: dict) -> Site:
        """Build a site from the ``site`` section of the workflow configuration."""
        return cls(
            name=str(cfg.get("name", "site")),
            latitude=float(cfg["latitude"]),
            longitude=float(cfg["longitude"]),
            elevation=float(cfg.get("elevation", 0.0)),
        )


def greenwich_mean_sidereal_time(mjd_utc: np.ndarray | float) -> np.ndarray:
    """Greenwich mean sidereal time in degrees (IAU 1982 expression, UT1 taken as UTC).

    Parameters
    ----------
    mjd_utc : float or array
        Modified Julian date (UTC).

    Returns
    -------
    numpy.ndarray
        GMST in degrees, in [0, 360).
    """
    d = np.asarray(mjd_utc, dtype=float) + 2400000.5 - 2451545.0
    t = d / 36525.0
    gmst = 280.46061837 + 360.98564736629 * d + 0.000387933 * t**2 - t**3 / 38710000.0
    return np.mod(gmst, 360.0)


def hour_angle(mjd_utc: np.ndarray | float, ra_deg: float, site: Site) -> np.ndarray:
    """Local hour angle of a right ascension in degrees, wrapped to [-180, 180)."""
    lst = greenwich_mean_sidereal_time(mjd_utc) + site.longitude
    return np.mod(lst - ra_deg + 180.0, 360.0) - 180.0


def altitude(mjd_utc: np.ndarray | float, ra_deg: float, dec_deg: float, site: Site) -> np.ndarray:
    """Geometric altitude above the horizon in degrees (no refraction, no precession)."""
    ha = np.radians(hour_angle(mjd_utc, ra_deg, site))
    lat, dec = np.radians(site.latitude), np.radians(dec_deg)
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0)))


def airmass_pickering(alt_deg: np.ndarray | float) -> np.ndarray:
    """Relative airmass from the apparent altitude (Pickering 2002), valid down to the horizon.

    Parameters
    ----------
    alt_deg : float or array
        Altitude in degrees; values below 0 are clipped to 0.
    """
    h = np.clip(np.asarray(alt_deg, dtype=float), 0.0, 90.0)
    return 1.0 / np.sin(np.radians(h + 244.0 / (165.0 + 47.0 * h**1.1)))


def airmass(mjd_utc: np.ndarray | float, ra_deg: float, dec_deg: float, site: Site) -> np.ndarray:
    """Airmass towards (ra, dec) at the given times, from site, time and pointing."""
    return airmass_pickering(altitude(mjd_utc, ra_deg, dec_deg, site))


def bjd_tdb(
    mjd_utc: np.ndarray | float,
    ra_deg: float,
    dec_deg: float,
    site: Site,
    topocentric: bool = True,
) -> np.ndarray:
    """Barycentric Julian date in TDB of UTC times, for a target at (ra, dec).

    Uses astropy's built-in (ERFA) ephemeris, so no download is needed.

    Parameters
    ----------
    mjd_utc : float or numpy.ndarray
        Times (MJD, UTC).
    ra_deg, dec_deg : float
        Target position (deg).
    site : Site
        Observatory.
    topocentric : bool
        Light travel time from the observatory (needs the Earth orientation tables, whose
        first reading costs a process about 4 s) or from the geocentre (differs by at most
        0.021 s, the light travel time across the Earth's radius).

    Returns
    -------
    numpy.ndarray
        BJD_TDB (full Julian date, not reduced).
    """
    times = Time(
        np.atleast_1d(np.asarray(mjd_utc, dtype=float)),
        format="mjd",
        scale="utc",
        location=site.location if topocentric else None,
    )
    target = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    if topocentric:
        ltt = times.light_travel_time(target, kind="barycentric", ephemeris="builtin")
    else:
        earth = get_body_barycentric("earth", times.tdb, ephemeris="builtin")
        ltt = TimeDelta((earth.dot(target.cartesian) / const.c).to(u.s))
    result = (times.tdb + ltt).jd
    return result if np.ndim(mjd_utc) else result[0]


def scintillation_noise(
    aperture_m: float, elevation_m: float, airmass: np.ndarray | float, exptime: np.ndarray | float
) -> np.ndarray:
    """Young's (1967) scintillation noise: the relative flux RMS of a star.

    sigma = 0.09 D^(-2/3) X^(7/4) exp(-h / 8000 m) / sqrt(2 t), D in cm, t in s.
    """
    d_cm = aperture_m * 100.0
    return (
        0.09
        * d_cm ** (-2.0 / 3.0)
        * np.asarray(airmass, float) ** 1.75
        * np.exp(-elevation_m / 8000.0)
        / np.sqrt(2.0 * np.asarray(exptime, float))
    )
