"""Questions asked of a simulated night's truth when scoring a reduction against it."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

__all__ = ["closest_bright_neighbour"]


def closest_bright_neighbour(
    stars: Table, band: str, fwhm_arcsec: float, radius_fwhm: float = 3.0, max_dmag: float = 2.5
) -> np.ndarray:
    """Distance (in FWHM) from each true star to its closest neighbour that matters.

    A neighbour matters when it is at most ``max_dmag`` fainter (2.5: it adds at least 10 %
    of the star's flux); stars without one within ``radius_fwhm`` get infinity.

    Parameters
    ----------
    stars : astropy.table.Table
        The truth catalogue (``ra``, ``dec`` in deg, magnitudes per band).
    band : str
        Band of the magnitudes compared.
    fwhm_arcsec : float
        The seeing FWHM that distances are counted in.
    radius_fwhm, max_dmag : float
        Search radius (FWHM) and magnitude difference.
    """
    sky = SkyCoord(np.asarray(stars["ra"]) * u.deg, np.asarray(stars["dec"]) * u.deg)
    a, b, sep, _ = sky.search_around_sky(sky, radius_fwhm * fwhm_arcsec * u.arcsec)
    other = a != b
    a, b, sep = a[other], b[other], sep.arcsec[other] / fwhm_arcsec
    mags = np.asarray(stars[band], float)
    counts = mags[b] < mags[a] + max_dmag
    closest = np.full(len(stars), np.inf)
    np.minimum.at(closest, a[counts], sep[counts])
    return closest
