"""TAN and TAN-SIP projections fitted to stars: linear least squares and the choice of order.

The tangent-plane coordinates of the stars are polynomials in the pixel offsets from the
reference pixel (the image centre): the linear terms give the CD matrix, the higher ones the SIP
``A`` and ``B`` coefficients. The order is chosen by the Bayesian information criterion
(`fit_best_order`).
"""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS, Sip

__all__ = ["fit_tan_sip", "fit_best_order"]


def _gnomonic(ra, dec, ra0, dec0):
    """Tangent-plane coordinates (deg) of (ra, dec) about (ra0, dec0)."""
    a, d, a0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def _inverse_gnomonic(xi, eta, ra0, dec0):
    x, y, d0 = np.radians(xi), np.radians(eta), np.radians(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    if rho == 0:
        return ra0, dec0
    dec = np.arcsin(np.cos(c) * np.sin(d0) + y * np.sin(c) * np.cos(d0) / rho)
    ra = np.radians(ra0) + np.arctan2(
        x * np.sin(c), rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c)
    )
    return float(np.degrees(ra) % 360.0), float(np.degrees(dec))


def _terms(degree: int):
    return [
        (p, q) for total in range(degree + 1) for p in range(total, -1, -1) for q in [total - p]
    ]


def fit_tan_sip(
    x: np.ndarray,
    y: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    shape: tuple[int, int],
    degree: int = 3,
    weights: np.ndarray | None = None,
) -> WCS:
    """Least-squares TAN(-SIP) solution with the reference pixel at the image centre.

    The tangent-plane coordinates of the stars are fitted as polynomials of degree ``degree`` in
    the pixel offsets from the reference pixel (a linear problem); the linear terms give the CD
    matrix, the higher ones the SIP ``A`` and ``B`` coefficients, the constant terms move the
    tangent point (iterated).

    Parameters
    ----------
    x, y : numpy.ndarray
        0-based pixel positions.
    ra, dec : numpy.ndarray
        Catalogue positions (deg).
    shape : tuple of int
        ``(ny, nx)`` of the image.
    degree : int
        1 for a plain TAN projection, 2 or more for SIP distortion of that order.
    weights : numpy.ndarray, optional
        Weights of the stars (inverse variance of their positions).
    """
    ny, nx = shape
    crpix = np.array([(nx + 1) / 2.0, (ny + 1) / 2.0])
    u = np.asarray(x, float) + 1.0 - crpix[0]
    v = np.asarray(y, float) + 1.0 - crpix[1]
    scale = max(nx, ny) / 2.0
    terms = _terms(max(degree, 1))
    design = np.column_stack([(u / scale) ** p * (v / scale) ** q for p, q in terms])
    root_w = np.sqrt(np.ones(len(u)) if weights is None else np.asarray(weights, float))
    design = design * root_w[:, None]
    ra0, dec0 = float(np.median(ra)), float(np.median(dec))
    for _ in range(4):
        xi, eta = _gnomonic(np.asarray(ra, float), np.asarray(dec, float), ra0, dec0)
        a, *_ = np.linalg.lstsq(design, xi * root_w, rcond=None)
        b, *_ = np.linalg.lstsq(design, eta * root_w, rcond=None)
        ra0, dec0 = _inverse_gnomonic(a[0], b[0], ra0, dec0)
    xi, eta = _gnomonic(np.asarray(ra, float), np.asarray(dec, float), ra0, dec0)
    a, *_ = np.linalg.lstsq(design, xi * root_w, rcond=None)
    b, *_ = np.linalg.lstsq(design, eta * root_w, rcond=None)
    coeff = {t: (a[k] / scale ** sum(t), b[k] / scale ** sum(t)) for k, t in enumerate(terms)}
    cd = np.array([[coeff[(1, 0)][0], coeff[(0, 1)][0]], [coeff[(1, 0)][1], coeff[(0, 1)][1]]])
    w = WCS(naxis=2)
    w.wcs.crpix = crpix
    w.wcs.crval = [ra0, dec0]
    w.wcs.cd = cd
    w.wcs.radesys = "ICRS"
    w.wcs.cunit = ["deg", "deg"]
    if degree >= 2:
        inv = np.linalg.inv(cd)
        sip_a = np.zeros((degree + 1, degree + 1))
        sip_b = np.zeros((degree + 1, degree + 1))
        for (p, q), (ca, cb) in coeff.items():
            if p + q >= 2:
                sip_a[p, q] = inv[0, 0] * ca + inv[0, 1] * cb
                sip_b[p, q] = inv[1, 0] * ca + inv[1, 1] * cb
        w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        w.sip = Sip(sip_a, sip_b, None, None, crpix)
    else:
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.pixel_shape = (nx, ny)
    w.wcs.set()
    return w


def fit_best_order(
    xy, sky: SkyCoord, max_degree: int, shape: tuple[int, int], weights: np.ndarray
) -> WCS:
    """TAN or TAN-SIP fit whose distortion order the data support (Bayesian information).

    Few stars with noisy centroids cannot constrain an order-3 distortion: the fit would bend
    the corners. BIC = 2 n ln(mean squared residual) + k ln(2 n) with k = 6 + SIP terms.

    Parameters
    ----------
    xy : tuple of numpy.ndarray
        0-based pixel positions ``(x, y)`` of the stars.
    sky : astropy.coordinates.SkyCoord
        Their positions on the sky.
    max_degree : int
        Highest order tried (1: TAN only).
    shape : tuple of int
        ``(ny, nx)`` of the image.
    weights : numpy.ndarray
        Weights of the stars.

    Returns
    -------
    astropy.wcs.WCS
        The fit of the lowest BIC.

    Raises
    ------
    ValueError
        With too few stars for a TAN fit.
    """
    n = len(sky)
    best, best_bic = None, np.inf
    for degree in range(1, max_degree + 1):
        k = 2 * len(_terms(degree))
        if 2 * n < 2 * k:
            break
        wcs = fit_tan_sip(xy[0], xy[1], sky.ra.deg, sky.dec.deg, shape, degree, weights)
        px, py = wcs.all_world2pix(sky.ra.deg, sky.dec.deg, 0)
        mse = np.sum(weights * ((px - xy[0]) ** 2 + (py - xy[1]) ** 2)) / (2.0 * weights.sum())
        bic = 2 * n * np.log(max(mse, 1e-12)) + k * np.log(2 * n)
        if bic < best_bic:
            best, best_bic = wcs, bic
    if best is None:
        raise ValueError(f"only {n} stars: too few for a TAN fit")
    return best
