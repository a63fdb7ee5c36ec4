import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, SkyCoord, get_body_barycentric
from astropy.time import Time
from astropy.utils import iers

from aifa_steps.core.observing import Site, airmass, altitude, bjd_tdb, greenwich_mean_sidereal_time

BONN = Site("AIfA Bonn", 50.7275, 7.0863, 60.0)


@pytest.fixture(autouse=True)
def _offline_iers():
    with (
        iers.conf.set_temp("auto_download", False),
        iers.conf.set_temp("iers_degraded_accuracy", "warn"),
    ):
        yield


def test_gmst_matches_astropy_within_a_second_of_time():
    mjd = np.array([60962.5, 60962.9, 60963.3])
    ours = greenwich_mean_sidereal_time(mjd)
    ref = (
        Time(mjd, format="mjd", scale="utc").sidereal_time("mean", "greenwich", model="IAU1982").deg
    )
    diff = (ours - ref + 180) % 360 - 180
    assert np.all(np.abs(diff) < 15.0 / 3600.0 * 1.0)  # 1 s of time = 15 arcsec


@pytest.mark.parametrize("mjd", [60962.78, 60962.85, 60962.95, 60963.02])
def test_altitude_and_airmass_match_astropy(mjd):
    ra, dec = 303.38175, 65.16194
    frame = AltAz(obstime=Time(mjd, format="mjd"), location=BONN.location)
    ref = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    # Precession since J2000 (ignored here) moves the pole by ~0.1 deg.
    assert altitude(mjd, ra, dec, BONN) == pytest.approx(ref.alt.deg, abs=0.15)
    assert airmass(mjd, ra, dec, BONN) == pytest.approx(float(ref.secz), rel=0.005)


def test_airmass_is_one_at_zenith_and_grows_towards_horizon():
    from aifa_steps.core.observing import airmass_pickering

    assert airmass_pickering(90.0) == pytest.approx(1.0, abs=1e-3)
    assert airmass_pickering(30.0) == pytest.approx(2.0, rel=0.01)
    assert airmass_pickering(10.0) > 5.0


def test_bjd_tdb_equals_tdb_plus_light_travel_time_along_line_of_sight():
    mjd = 60962.9
    ra, dec = 303.38175, 65.16194
    t = Time(mjd, format="mjd", scale="utc")
    earth = get_body_barycentric("earth", t.tdb).xyz.to(u.m).value
    target = SkyCoord(ra * u.deg, dec * u.deg).cartesian.xyz.value
    ltt_days = np.dot(earth, target) / 299792458.0 / 86400.0
    expected = t.tdb.jd + ltt_days
    assert bjd_tdb(mjd, ra, dec, BONN) == pytest.approx(expected, abs=0.1 / 86400.0)
    assert abs(bjd_tdb(mjd, ra, dec, BONN) - t.jd) < 8.5 / 1440.0 + 70.0 / 86400.0


def test_geocentric_barycentric_time_is_within_the_earth_light_time():
    from aifa_steps.core.observing import Site, bjd_tdb

    site = Site("test", 50.7275, 7.0863, 60.0)
    mjd = np.array([60962.8, 60963.1, 61100.5])
    topo = bjd_tdb(mjd, 303.38, 65.16, site)
    geo = bjd_tdb(mjd, 303.38, 65.16, site, topocentric=False)
    assert np.all(np.abs(topo - geo) * 86400 < 0.0213)
    assert np.any(np.abs(topo - geo) * 86400 > 0.001)


def test_scintillation_follows_youngs_formula():
    from aifa_steps.core.observing import scintillation_noise

    # 35 cm at sea level, airmass 1, 30 s: 0.09 * 35^(-2/3) / sqrt(60) = 1.09e-3
    assert scintillation_noise(0.35, 0.0, 1.0, 30.0) == pytest.approx(1.086e-3, rel=1e-3)
    assert scintillation_noise(0.35, 0.0, 2.0, 30.0) == pytest.approx(1.086e-3 * 2**1.75, rel=1e-3)
